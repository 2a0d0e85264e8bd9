"""Writing detector reports: JSON, Markdown and PNG figures in one folder.

``write_detection_report`` puts ``report.json``, ``report.md``,
``pr_curve.png`` and ``confusion_matrix.png`` in the output folder. The
Markdown opens with the settings that make the figures comparable (score
cut-off, NMS IoU, max detections, letterbox, AP convention), and prints the
reference figures known for the model and set (``eval/references.json``)
beside ours, with which split picked the checkpoint.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from eval.plots import plot_confusion_matrix, plot_pr_curves

# Conventions closer than this are reported as agreeing.
CONVENTION_SPREAD_NOTE = 0.005


def load_references() -> dict[str, Any]:
    text = resources.files("eval").joinpath("references.json").read_text("utf-8")
    return json.loads(text)["sets"]


def references_for(set_name: str, model_file: str) -> dict[str, Any]:
    """What is known for this set (published results) and model (reference
    run, checkpoint selection, like-for-like settings)."""
    known = load_references().get(set_name, {})
    return {
        "split_note": known.get("split_note"),
        "published": known.get("published", []),
        "model": known.get("models", {}).get(model_file),
    }


def write_detection_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write the report's files; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = report["header"]
    report = {
        **report,
        "references": references_for(header["set"], header["model_file"]),
    }
    title = f"{header['model']} on {header['set']}/{header['split']}"
    curves = [
        (f"{row['class']} AP50 {_fmt(row['ap50'])}", row["pr101_iou50"])
        for row in report["coco"]["per_class"]
    ]
    paths = {
        "pr_curve": plot_pr_curves(curves, out_dir / "pr_curve.png", title=title),
        "confusion_matrix": plot_confusion_matrix(
            report["confusion_matrix"]["labels"],
            report["confusion_matrix"]["counts_true_by_predicted"],
            out_dir / "confusion_matrix.png",
            title=f"{title}, score > {header['settings']['operating_score']}, IoU 0.5",
        ),
    }
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(render_detection_markdown(public), encoding="utf-8")
    return paths


def _fmt(value: float | None, digits: int = 4) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def render_detection_markdown(report: dict[str, Any]) -> str:
    lines = _header_lines(report["header"])
    lines += _coco_lines(report["coco"])
    lines += _reference_lines(report)
    lines += _convention_lines(report["conventions"])
    lines += _operating_lines(report["operating_point"])
    lines += _confusion_lines(report["confusion_matrix"])
    dropped = report.get("dropped_boxes_by_model_class") or {}
    if dropped:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        lines += [
            "",
            f"Boxes of model classes the set does not have, dropped: {shown}.",
        ]
    timing = report.get("timing") or {}
    if timing.get("detect_s") is not None:
        lines += [
            "",
            f"Detection took {timing['detect_s']} s ({timing['images_per_s']} "
            "images/s, this machine, not a benchmark).",
        ]
    return "\n".join([*lines, ""])


def _header_lines(header: dict[str, Any]) -> list[str]:
    settings = header["settings"]
    size = header["input_size_hw"]
    table = ", ".join(
        f"{row['set_class']} -> {row['model_class']} (id {row['model_id']})"
        for row in header["class_table"]
    )
    return [
        f"# Detector evaluation: {header['model']} on "
        f"{header['set']}/{header['split']}",
        "",
        "| setting | value |",
        "|---|---|",
        f"| model | {header['model_file']} (sha256 "
        f"{(header['model_sha256'] or '?')[:12]}…) |",
        f"| input | {'x'.join(map(str, size)) if size else '?'} at most, "
        f"letterbox {settings['letterbox']} |",
        f"| set | {header['set_source']}, split {header['split']}: "
        f"{header['images']} images ({header['images_without_objects']} without "
        f"objects), {header['boxes']} boxes |",
        f"| boxes kept for AP | score > {settings['min_score']} |",
        f"| NMS IoU | {settings['nms_iou']} (class-aware) |",
        f"| max detections per image | {settings['max_det']} (COCO maxDets "
        f"[1, 10, {settings['max_det']}]) |",
        f"| operating threshold | score > {settings['operating_score']} |",
        f"| headline AP | {header['headline_convention']} |",
        f"| class table (set -> model) | {table} |",
        "",
    ]


def _coco_lines(coco: dict[str, Any]) -> list[str]:
    lines = [
        "## COCO metrics (faster-coco-eval)",
        "",
        f"mAP@0.5:0.95 **{_fmt(coco['map50_95'])}**, "
        f"mAP@0.5 **{_fmt(coco['map50'])}**, mAP@0.75 {_fmt(coco['map75'])}.",
        "",
        "| class | AP@0.5:0.95 | AP@0.5 |",
        "|---|---|---|",
    ]
    for row in coco["per_class"]:
        lines.append(
            f"| {row['class']} | {_fmt(row['ap50_95'])} | {_fmt(row['ap50'])} |"
        )
    lines += ["", "![PR curve](pr_curve.png)", ""]
    return lines


def _reference_lines(report: dict[str, Any]) -> list[str]:
    refs = report.get("references") or {}
    model, published = refs.get("model"), refs.get("published") or []
    if not model and not published:
        return []
    ours = report["coco"]
    lines = [
        "## Beside reference figures",
        "",
        "| source | conditions | mAP@0.5 | mAP@0.5:0.95 |",
        "|---|---|---|---|",
        f"| ours, COCO-101 | this report's settings | {_fmt(ours['map50'])} | "
        f"{_fmt(ours['map50_95'])} |",
    ]
    if model:
        ref = model["reference"]
        same = report["conventions"][ref["convention"]]
        lines += [
            f"| ours, {ref['convention']} convention | same detections | "
            f"{_fmt(same['map50'])} | {_fmt(same['map50_95'])} |",
            f"| {ref['tool']} | {ref['conditions']} | {ref['map50']:.4f} "
            f"(ours {_signed(_diff(same['map50'], ref['map50']))}) | "
            f"{ref['map50_95']:.4f} "
            f"(ours {_signed(_diff(same['map50_95'], ref['map50_95']))}) |",
        ]
    for entry in published:
        lines.append(
            f"| published: {entry['what']} | its own model | {entry['map50']:.3f} | "
            f"{entry['map50_95']:.3f} |"
        )
    lines.append("")
    if refs.get("split_note"):
        lines.append(refs["split_note"])
    if model:
        lines.append(f"Checkpoint selection: {model['checkpoint_selection']}.")
        unlike = _unlike_settings(report["header"]["settings"], model["eval_settings"])
        if unlike:
            lines += [
                "",
                "**Not like for like:** this run's settings differ from the "
                f"reference's conditions ({unlike}); rerun with those to compare.",
            ]
    lines.append("")
    return lines


def _unlike_settings(ours: dict[str, Any], reference: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} {ours.get(key)} here, {value} there"
        for key, value in reference.items()
        if ours.get(key) != value
    )


def _diff(ours: float | None, reference: float) -> float | None:
    return None if ours is None else ours - reference


def _convention_lines(conventions: dict[str, Any]) -> list[str]:
    lines = [
        "## AP conventions on the same detections",
        "",
        "| convention | mAP@0.5 | mAP@0.5:0.95 | definition |",
        "|---|---|---|---|",
    ]
    for name, row in conventions.items():
        lines.append(
            f"| {name} | {_fmt(row['map50'])} | {_fmt(row['map50_95'])} "
            f"| {row['note']} |"
        )
    spread = _convention_spread(conventions)
    lines.append("")
    if spread > CONVENTION_SPREAD_NOTE:
        lines.append(
            f"The conventions differ by up to {spread:.4f} here. The headline is "
            "COCO-101 (a step read of the precision envelope); VOC-11 reads it "
            "at only 11 recall points; ultralytics and YOLOv5 interpolate the "
            "envelope linearly and integrate with the trapezoid rule "
            "(ultralytics drops the curve to 0 after the last recall, YOLOv5 "
            "ramps it down to recall 1), so a figure from those "
            "tools compares with the `ultralytics` or `yolov5` row."
        )
    else:
        lines.append(f"The conventions agree within {CONVENTION_SPREAD_NOTE} here.")
    lines.append("")
    return lines


def _convention_spread(conventions: dict[str, Any]) -> float:
    """The widest gap between conventions, over mAP@0.5 and mAP@0.5:0.95
    alike: at 0.5 the 11-point read can stand apart on its own."""
    spreads = []
    for key in ("map50", "map50_95"):
        values = [row[key] for row in conventions.values() if row[key] is not None]
        if values:
            spreads.append(max(values) - min(values))
    return max(spreads, default=0.0)


def _operating_lines(point: dict[str, Any]) -> list[str]:
    lines = [
        f"## At the operating threshold (score > {point['score_threshold']}, IoU 0.5)",
        "",
        "| class | TP | FP | FN | precision | recall | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in [*point["per_class"], {"class": "all", **point["all"]}]:
        lines.append(
            f"| {row['class']} | {row['tp']} | {row['fp']} | {row['fn']} | "
            f"{_fmt(row['precision'], 3)} | {_fmt(row['recall'], 3)} | "
            f"{_fmt(row['f1'], 3)} |"
        )
    per_empty = point["false_positives_per_empty_image"]
    lines += [
        "",
        f"Images without objects: {point['empty_images']}; false boxes on them: "
        f"{point['false_positives_on_empty_images']}"
        + ("" if per_empty is None else f" ({per_empty:.2f} per image)")
        + ".",
        "",
    ]
    return lines


def _confusion_lines(confusion: dict[str, Any]) -> list[str]:
    labels = confusion["labels"]
    lines = [
        "## Confusion matrix (rows true, columns predicted)",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for label, row in zip(labels, confusion["counts_true_by_predicted"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)"]
    return lines
