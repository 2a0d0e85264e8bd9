"""AP conventions, worked out by hand on small ranked curves."""

from __future__ import annotations

import numpy as np
import pytest
from faster_coco_eval import COCO, COCOeval_faster

from eval.ap import APConvention, average_precision, match_image, rank_matches

# One class, one image, three objects; four boxes in score order:
# 0.9 hit, 0.8 on nothing, 0.7 hit, 0.6 hit, every hit at IoU >= 0.9.
TRUTH = np.array([[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100]], float)
PREDS = np.array(
    [[0, 0, 100, 95], [600, 0, 700, 100], [200, 0, 300, 95], [400, 0, 500, 95]], float
)
SCORES = np.array([0.9, 0.8, 0.7, 0.6])


@pytest.mark.parametrize(
    ("convention", "expected"),
    [
        # 34 recall points (0..0.33) at precision 1, 67 at 0.75: 84.25 / 101.
        (APConvention.COCO101, 84.25 / 101),
        # 4 points (0..0.3) at 1, 7 points at 0.75: 9.25 / 11.
        (APConvention.VOC11, 9.25 / 11),
        # 1/3 at precision 1, then 2/3 at 0.75.
        (APConvention.ALL_POINT, 1 / 3 + (2 / 3) * 0.75),
        # 0.33 at 1 + the 0.33-0.34 ramp 0.00875 + 0.65 at 0.75 + the last
        # 0.01 ramping to the forced 0 at recall 1 (0.00375).
        (APConvention.ULTRALYTICS, 0.33 + 0.00875 + 0.4875 + 0.00375),
    ],
)
def test_three_objects_one_false_box_under_each_convention(convention, expected):
    ranked = rank_matches([(TRUTH, PREDS, SCORES)], np.array([0.5]))

    assert ranked.ap(convention) == pytest.approx(expected, abs=1e-9)


def test_the_stated_figures_for_the_three_conventions():
    ranked = rank_matches([(TRUTH, PREDS, SCORES)], np.array([0.5]))

    assert round(ranked.ap(APConvention.COCO101), 4) == 0.8342
    assert round(ranked.ap(APConvention.VOC11), 4) == 0.8409
    assert round(ranked.ap(APConvention.ALL_POINT), 4) == 0.8333


def _coco_json() -> tuple[dict, list[dict]]:
    """The curve above as COCO truth and results (boxes as x, y, w, h)."""
    truth = {
        "images": [{"id": 1, "width": 800, "height": 200}],
        "categories": [{"id": 1, "name": "garbage"}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            for i, (x1, y1, x2, y2) in enumerate(TRUTH.tolist())
        ],
    }
    results = [
        {
            "image_id": 1,
            "category_id": 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": s,
        }
        for (x1, y1, x2, y2), s in zip(PREDS.tolist(), SCORES.tolist(), strict=True)
    ]
    return truth, results


def test_coco_101_point_value_matches_faster_coco_eval_on_the_same_json():
    truth, results = _coco_json()
    gt = COCO(truth)
    evaluator = COCOeval_faster(
        gt, gt.loadRes(results), "bbox", print_function=lambda *_: None
    )
    evaluator.run()
    ours = rank_matches([(TRUTH, PREDS, SCORES)], np.array([0.5]))

    assert evaluator.stats[1] == pytest.approx(ours.ap(APConvention.COCO101), abs=1e-4)


def test_coco_101_point_value_matches_pycocotools_on_the_same_json(tmp_path, capsys):
    # The reference implementation itself, beside the library the harness
    # uses for speed: both must give the hand-worked 0.8342.
    import json

    from pycocotools.coco import COCO as ReferenceCOCO
    from pycocotools.cocoeval import COCOeval

    truth, results = _coco_json()
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps(truth))
    gt = ReferenceCOCO(str(truth_file))
    evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    capsys.readouterr()  # its printed summary

    assert round(evaluator.stats[1], 4) == 0.8342
    assert evaluator.stats[1] == pytest.approx(0.8342, abs=1e-4)


def test_interpolated_and_all_point_ap_differ_on_the_same_curve():
    recall = np.array([1 / 3, 1 / 3, 2 / 3, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3, 0.75])

    coco = average_precision(recall, precision, APConvention.COCO101)
    all_point = average_precision(recall, precision, APConvention.ALL_POINT)

    assert coco - all_point == pytest.approx(84.25 / 101 - 5 / 6, abs=1e-12)
    assert coco > all_point


def test_two_boxes_on_one_object_are_one_hit_and_one_false_box():
    truth = np.array([[10, 10, 50, 50]], float)
    boxes = np.array([[10, 10, 50, 50], [11, 11, 50, 50]], float)

    _order, tp = match_image(truth, boxes, np.array([0.9, 0.8]), np.array([0.5]))
    ranked = rank_matches([(truth, boxes, np.array([0.9, 0.8]))], np.array([0.5]))

    assert tp[:, 0].tolist() == [True, False]
    # Recall 1 is reached by the first box at precision 1: AP 1 by every
    # convention; the duplicate costs precision at the operating point only.
    assert ranked.ap(APConvention.ALL_POINT) == 1.0
    assert ranked.curve()[1].tolist() == [1.0, 0.5]


def test_ap_is_undefined_without_objects():
    ranked = rank_matches(
        [(np.zeros((0, 4)), np.array([[0, 0, 5, 5]]), np.array([0.9]))]
    )

    assert ranked.ap(APConvention.COCO101) is None


@pytest.mark.parametrize(
    ("recall", "precision", "message"),
    [(np.array([0.5]), np.array([1.0, 0.5]), "same shape")],
)
def test_refuses_mismatched_curves(recall, precision, message):
    with pytest.raises(ValueError, match=message):
        average_precision(recall, precision, APConvention.COCO101)
