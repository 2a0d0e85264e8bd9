"""Regression gate: key figures on the shared sets against a committed baseline.

``eval/baseline.json`` holds, with a stated tolerance per kind of figure:

- mAP@0.5 and mAP@0.5:0.95 (COCO, faster-coco-eval) of each catalog model
  on each shared labelled set whose classes it covers, with the settings
  they were measured under;
- on each truth file of shared video: event F1 per category and overall,
  the mean temporal IoU of the found events with their true ones, and the
  time to alert in stream seconds.

A figure fails when it moves the wrong way by more than its tolerance: mAP,
F1 and temporal IoU falling below the baseline, time to alert rising above
it. Moving the right way is fine (take it into the baseline with ``citywatch
eval gate --update`` after checking why). Speed is never gated: wall time
depends on the machine, while time to alert is counted in stream time.
Paths in the baseline start with ``{shared}`` (the shared data and model
folder) or ``{repo}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.datasets import load_labelled_set
from eval.detection import DetectionSettings, evaluate_detector

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_PATH = Path(__file__).with_name("baseline.json")


# Event figures the gate holds, each with its tolerance key and the way it
# may move freely.
EVENT_FIGURES = {
    "f1": ("event_f1", True),
    "temporal_iou": ("temporal_iou", True),
    "time_to_alert_stream_s": ("time_to_alert_s", False),
}


@dataclass(frozen=True)
class GateResult:
    figure: str
    baseline: float
    measured: float | None
    tolerance: float
    higher_is_better: bool = True

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        if self.higher_is_better:
            return self.measured >= self.baseline - self.tolerance
        return self.measured <= self.baseline + self.tolerance


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_path(template: str, shared_dir: Path) -> Path:
    return Path(template.format(shared=shared_dir, repo=REPO_ROOT))


def covered_sets(
    model_classes: dict[str, list[str]], set_classes: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """(model, set) pairs where the model has every class of the set by name."""
    return sorted(
        (model, name)
        for model, classes in model_classes.items()
        for name, needed in set_classes.items()
        if set(needed) <= set(classes)
    )


def measure_detection(
    entry: dict[str, Any],
    shared_dir: Path,
    load_detector: Callable[[str, DetectionSettings], Any],
) -> dict[str, float | None]:
    settings = DetectionSettings(**entry["settings"])
    labelled_set = load_labelled_set(
        resolve_path(entry["data"], shared_dir), split=entry["split"]
    )
    detector = load_detector(entry["model"], settings)
    report = evaluate_detector(detector, labelled_set, settings, progress=False)
    return {"map50": report["coco"]["map50"], "map50_95": report["coco"]["map50_95"]}


def measure_events(
    entry: dict[str, Any],
    shared_dir: Path,
    load_street_detector: Callable[[str], object],
) -> dict[str, float | None]:
    from eval.events import evaluate_events

    report = evaluate_events(
        resolve_path(entry["truth"], shared_dir), load_street_detector
    )
    return event_figures(report)


def event_figures(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The gated figures of an event report, per category (F1 also overall)."""
    rows = report["per_category"]
    figures = {
        "f1": {name: row["f1"] for name, row in rows.items()},
        "temporal_iou": {name: row["mean_temporal_iou"] for name, row in rows.items()},
        "time_to_alert_stream_s": {
            name: row["time_to_alert_stream_s"] for name, row in rows.items()
        },
    }
    figures["f1"]["overall"] = report["overall"]["f1"]
    return figures


def check(
    baseline: dict[str, Any],
    measured_detection: list[dict[str, float | None]],
    measured_events: list[dict[str, dict[str, float | None]]],
) -> list[GateResult]:
    """Compare measured figures, in the baseline's order, with the baseline."""
    tolerance = baseline["tolerance"]
    results = []
    for entry, measured in zip(baseline["detection"], measured_detection, strict=True):
        for key in ("map50", "map50_95"):
            results.append(
                GateResult(
                    figure=f"{entry['model']} on {entry['set']}: {key}",
                    baseline=entry[key],
                    measured=measured.get(key),
                    tolerance=tolerance["map"],
                )
            )
    for entry, measured in zip(baseline["events"], measured_events, strict=True):
        results += check_events(entry, measured, tolerance)
    return results


def check_events(
    entry: dict[str, Any],
    measured: dict[str, dict[str, float | None]],
    tolerance: dict[str, float],
) -> list[GateResult]:
    """One truth file's event figures against its baseline entry."""
    results = []
    for figure, (tolerance_key, higher_is_better) in EVENT_FIGURES.items():
        for key, value in entry.get(figure, {}).items():
            results.append(
                GateResult(
                    figure=f"{entry['name']}: {figure} {key}",
                    baseline=value,
                    measured=measured.get(figure, {}).get(key),
                    tolerance=tolerance[tolerance_key],
                    higher_is_better=higher_is_better,
                )
            )
    return results


def run_gate(
    shared_dir: Path,
    load_detector: Callable[[str, DetectionSettings], Any],
    load_street_detector: Callable[[str], object],
    *,
    baseline_path: Path = BASELINE_PATH,
    update: bool = False,
) -> list[GateResult]:
    """Measure every baseline figure; with ``update``, write them as the new
    baseline (same entries, same tolerance)."""
    baseline = load_baseline(baseline_path)
    detection = [
        measure_detection(entry, shared_dir, load_detector)
        for entry in baseline["detection"]
    ]
    events = [
        measure_events(entry, shared_dir, load_street_detector)
        for entry in baseline["events"]
    ]
    if update:
        for entry, figures in zip(baseline["detection"], detection, strict=True):
            entry.update({k: round(v, 4) for k, v in figures.items() if v is not None})
        for entry, figures in zip(baseline["events"], events, strict=True):
            for figure in EVENT_FIGURES:
                entry[figure] = {
                    k: round(v, 4)
                    for k, v in figures[figure].items()
                    if v is not None and k in entry.get(figure, figures[figure])
                }
        baseline_path.write_text(json.dumps(baseline, indent=2) + "\n", "utf-8")
    return check(baseline, detection, events)


def render_gate_table(results: list[GateResult]) -> str:
    lines = [f"{'figure':<64} {'baseline':>9} {'measured':>9} {'tol':>6}  result"]
    for result in results:
        measured = "-" if result.measured is None else f"{result.measured:.4f}"
        lines.append(
            f"{result.figure:<64} {result.baseline:>9.4f} {measured:>9} "
            f"{result.tolerance:>6.3f}  {'ok' if result.passed else 'BELOW BASELINE'}"
        )
    return "\n".join(lines)
