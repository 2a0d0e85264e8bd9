"""Regression gate: key figures on the shared sets against a committed baseline.

``eval/baseline.json`` holds, with a stated tolerance per kind of figure:

- mAP@0.5 and mAP@0.5:0.95 (COCO, faster-coco-eval) of each catalog model
  on each shared labelled set whose classes it covers, with the settings
  they were measured under;
- event F1 per category, and overall, on each truth file of shared video.

A figure fails when it falls below its baseline minus the tolerance; rising
is fine (raise the baseline with ``citywatch eval gate --update`` after
checking why). Speed is never gated. Paths in the baseline start with
``{shared}`` (the shared data and model folder) or ``{repo}``.
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


@dataclass(frozen=True)
class GateResult:
    figure: str
    baseline: float
    measured: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.measured is not None and (
            self.measured >= self.baseline - self.tolerance
        )


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
    figures = {name: row["f1"] for name, row in report["per_category"].items()}
    figures["overall"] = report["overall"]["f1"]
    return figures


def check(
    baseline: dict[str, Any],
    measured_detection: list[dict[str, float | None]],
    measured_events: list[dict[str, float | None]],
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
        for key, value in entry["f1"].items():
            results.append(
                GateResult(
                    figure=f"{entry['name']}: event F1 {key}",
                    baseline=value,
                    measured=measured.get(key),
                    tolerance=tolerance["event_f1"],
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
            entry["f1"] = {k: round(v, 4) for k, v in figures.items() if v is not None}
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
