"""Two or more detector runs side by side on the same labelled set.

A run is a model with its evaluation settings. Runs of the same model that
differ only in the operating threshold share one pass of the detector: the
boxes above a higher threshold are a subset of those above a lower one.
The comparison writes ``comparison.md`` and ``comparison.json`` with each
figure per run and its difference from the first run, ``pr_overlay.png``
with every run's precision envelope at IoU 0.5, and each run's own report in
a subfolder.

Event runs compare the same way: truth files over the same videos whose
cameras differ (rules, zones, thresholds), per category side by side.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.datasets import LabelledSet
from eval.detection import (
    ClassTable,
    DetectionSettings,
    predict_set,
    report_header,
    score_predictions,
)
from eval.plots import plot_pr_curves
from eval.report import write_detection_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    label: str
    model: str
    settings: DetectionSettings


def plan_runs(
    models: list[str], operating_scores: list[float], base: DetectionSettings
) -> list[RunSpec]:
    """Every model at every operating threshold, labelled for the tables."""
    runs = []
    for model in models:
        for score in operating_scores:
            label = Path(model).stem if Path(model).suffix else model
            if len(operating_scores) > 1:
                label = f"{label} @ {score:g}"
            settings = replace(base, operating_score=score)
            runs.append(RunSpec(label, model, settings))
    return runs


def compare_runs(
    labelled_set: LabelledSet,
    runs: list[RunSpec],
    load_detector: Callable[[str, DetectionSettings], Any],
    *,
    class_map: dict[str, str] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One full report per run; the detector runs once per model/settings."""
    reports: list[dict[str, Any]] = []
    cache: dict[tuple[str, DetectionSettings], tuple[Any, Any, Any]] = {}
    for run in runs:
        key = (run.model, replace(run.settings, operating_score=run.settings.min_score))
        if key not in cache:
            detector = load_detector(run.model, run.settings)
            table = ClassTable.build(
                labelled_set.class_names, list(detector.names), class_map
            )
            predictions, dropped = predict_set(
                detector, labelled_set, table, run.settings, progress=progress
            )
            cache[key] = (detector, table, (predictions, dropped))
        detector, table, (predictions, dropped) = cache[key]
        report = score_predictions(labelled_set, predictions, run.settings)
        report["header"] = report_header(
            detector, labelled_set, run.settings, table, run.label
        )
        report["dropped_boxes_by_model_class"] = dropped
        report["timing"] = {"detect_s": None, "images_per_s": None}
        reports.append(report)
    return reports


def comparison_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Key figures per run, with the difference from the first run."""
    rows = []
    for report in reports:
        point = report["operating_point"]
        rows.append(
            {
                "run": report["header"]["model"],
                "input_hw": report["header"]["input_size_hw"],
                "settings": report["header"]["settings"],
                "map50_95": report["coco"]["map50_95"],
                "map50": report["coco"]["map50"],
                "map75": report["coco"]["map75"],
                "precision": point["all"]["precision"],
                "recall": point["all"]["recall"],
                "f1": point["all"]["f1"],
                "fp_per_empty_image": point["false_positives_per_empty_image"],
            }
        )
    first = rows[0]
    for row in rows:
        row["diff_from_first"] = {
            key: _diff(row[key], first[key])
            for key in ("map50_95", "map50", "map75", "precision", "recall", "f1")
        }
    return rows


def _diff(value: float | None, first: float | None) -> float | None:
    return None if value is None or first is None else value - first


def write_comparison(
    reports: list[dict[str, Any]],
    out_dir: Path,
    *,
    pr_png: Path | None = None,
) -> dict[str, Path]:
    """Write the side-by-side report, the PR overlay and each run's report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for report in reports:
        write_detection_report(report, out_dir / _slug(report["header"]["model"]))
    rows = comparison_rows(reports)
    header = reports[0]["header"]
    title = f"{header['set']}/{header['split']}: PR at IoU 0.5"
    curves = [
        (
            f"{report['header']['model']} {row['class']} AP50 {row['ap50']:.3f}"
            if row["ap50"] is not None
            else f"{report['header']['model']} {row['class']}",
            row["pr101_iou50"],
        )
        for report in reports
        for row in report["coco"]["per_class"]
    ]
    paths = {
        "pr_overlay": plot_pr_curves(curves, out_dir / "pr_overlay.png", title=title)
    }
    if pr_png is not None:
        paths["pr_png"] = plot_pr_curves(curves, pr_png, title=title)
    paths["json"] = out_dir / "comparison.json"
    paths["json"].write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    paths["markdown"] = out_dir / "comparison.md"
    paths["markdown"].write_text(render_comparison_markdown(reports, rows), "utf-8")
    return paths


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"


def render_comparison_markdown(
    reports: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> str:
    header = reports[0]["header"]
    lines = [
        f"# Comparison on {header['set']}/{header['split']} "
        f"({header['images']} images, {header['boxes']} boxes)",
        "",
        "Same images, same matching; differences are from the first run. "
        "mAP by faster-coco-eval (COCO 101-point); P/R/F1 at IoU 0.5 above "
        "each run's operating threshold.",
        "",
        "| run | input | letterbox | NMS IoU | threshold | mAP@0.5:0.95 | mAP@0.5 | "
        "mAP@0.75 | precision | recall | F1 | FP per empty image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        diff = row["diff_from_first"]
        settings = row["settings"]
        size = "x".join(map(str, row["input_hw"])) if row["input_hw"] else "?"
        lines.append(
            f"| {row['run']} | {size} | {settings['letterbox']} | "
            f"{settings['nms_iou']} | {settings['operating_score']} | "
            + " | ".join(
                _with_diff(row[key], diff[key], row is rows[0])
                for key in ("map50_95", "map50", "map75", "precision", "recall", "f1")
            )
            + f" | {_fmt(row['fp_per_empty_image'])} |"
        )
    lines += ["", "![PR curves](pr_overlay.png)", ""]
    lines.append(
        "Each run's full report: "
        + ", ".join(
            f"[{r['header']['model']}]({_slug(r['header']['model'])}/report.md)"
            for r in reports
        )
    )
    return "\n".join(lines) + "\n"


def _with_diff(value: float | None, diff: float | None, first: bool) -> str:
    if value is None:
        return "undefined"
    return f"{value:.4f}" if first or diff is None else f"{value:.4f} ({diff:+.4f})"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# Event figures set side by side, in the table's order.
EVENT_FIGURES = (
    "precision",
    "recall",
    "f1",
    "mean_temporal_iou",
    "time_to_alert_stream_s",
    "time_to_ticket_stream_s",
    "false_alarms_per_camera_hour",
)


def event_comparison_rows(
    reports: list[dict[str, Any]], labels: list[str]
) -> list[dict[str, Any]]:
    """Per category, each run's event figures and their difference from the
    first run's (the same videos under other rules, zones or thresholds)."""
    categories = sorted({c for report in reports for c in report["per_category"]})
    rows = []
    for category in categories:
        first = reports[0]["per_category"].get(category, {})
        for label, report in zip(labels, reports, strict=True):
            figures = report["per_category"].get(category, {})
            rows.append(
                {
                    "run": label,
                    "category": category,
                    **{key: figures.get(key) for key in EVENT_FIGURES},
                    "diff_from_first": {
                        key: _diff(figures.get(key), first.get(key))
                        for key in EVENT_FIGURES
                    },
                }
            )
    return rows


def write_event_comparison(
    reports: list[dict[str, Any]], labels: list[str], out_dir: Path
) -> dict[str, Path]:
    """``comparison.json`` and ``comparison.md`` of event runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = event_comparison_rows(reports, labels)
    paths = {"json": out_dir / "comparison.json", "markdown": out_dir / "comparison.md"}
    paths["json"].write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_event_comparison(rows), encoding="utf-8")
    return paths


def render_event_comparison(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Event runs side by side",
        "",
        "Per category; differences are from the first run. Times are stream "
        "seconds from the true start (alert: the decision; ticket: filed).",
        "",
        "| category | run | precision | recall | F1 | mean tIoU | alert (s) | "
        "ticket (s) | false alarms / camera-hour |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            _event_cell(row[key], row["diff_from_first"][key]) for key in EVENT_FIGURES
        ]
        lines.append(
            f"| {row['category']} | {row['run']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def _event_cell(value: float | None, diff: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if not diff else f"{value:.3f} ({diff:+.3f})"
