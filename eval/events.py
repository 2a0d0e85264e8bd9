"""Event accuracy on video: the camera pipeline against a truth file.

Each video of a truth file runs through the deployed path
(``vision.pipeline.run_source``: the camera file's analyzers and rules, the
throw analyzer's second stage when the camera file has one, the camera
worker, the evidence writer into a temporary local store, and a
``MemorySink``); models load as the service loads them. The filed events
are matched to the true events of the same category by time overlap.

Truth file format (JSON or YAML): a list of videos, or ``{"videos": [...]}``.
Each video::

    {
      "file": "street.avi",          # relative to the truth file (or --videos)
      "fps": 10.0,                   # needed only for events given in frames
      "camera": {...},               # optional inline camera file (zones,
                                     #   rules, model); default: throws on the
                                     #   whole frame, as `citywatch watch` does
      "camera_file": "cam.yaml",     # or a camera file, relative to the truth
      "events": [
        {"category": "illegal_parking", "start_s": 0.0, "end_s": 40.0},
        {"category": "throw", "frames": [13, 66]},
        {"type": "falling_object", "falling_frames": [13, 66]},
        {"type": "pedestrians", "frames": "all"}
      ]
    }

An event item is a problem to find when it names a ``category`` (one of
``vision.types.Category``) or a ``type`` mapped to one (``falling_object`` is
``throw``, timed by ``falling_frames`` when present). Any other ``type`` is an
activity the footage shows but that is not a problem (pedestrians, people
talking, parked cars of unknown legality): an event on such a video is a false
alarm. Frame numbers are 0-based and turn into seconds by the video's fps
(frame n spans n/fps to (n+1)/fps).

Matching, per video and category: a filed event matches a true event when
their closed time intervals overlap. Pairs are taken greedily by temporal IoU,
each event and each truth at most once, so an event spanning two true events
matches one of them (the other is missed) and a second event on one true
event is a false alarm. Reported per category: precision, recall, F1, mean
temporal IoU of the matches, time to alert (stream seconds from the true start
to the event's ``detected_ts_s``; wall seconds from processing the frame at
the true start to the event's creation beside it), time to ticket (the same
to the filing of its ticket, after the clip's post-roll), alert after end
(stream seconds from the true end to ``detected_ts_s``), and false alarms per
camera-hour on the videos that have no true event of that category.
"""

from __future__ import annotations

import bisect
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eval.progress import ProgressBar
from vision.config import CameraConfig, load_camera_file
from vision.errors import ConfigError
from vision.sink import FiledTicket, MemorySink
from vision.types import Category, Event, Frame

logger = logging.getLogger(__name__)

TYPE_TO_CATEGORY = {"falling_object": Category.THROW}


@dataclass(frozen=True)
class TrueEvent:
    category: Category
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TruthVideo:
    path: Path
    camera: CameraConfig
    events: list[TrueEvent]
    activities: list[str] = field(default_factory=list)  # not problems


@dataclass(frozen=True)
class FoundEvent:
    """A filed event as the scorer needs it."""

    category: Category
    started_ts_s: float
    ended_ts_s: float
    detected_ts_s: float
    detected_wall_s: float | None = None
    event_id: str = ""
    # When its ticket was filed: the newest analysed frame's stream time, and
    # the wall time. A ticket waits for the clip's post-roll, or the end of a
    # recording that stops first.
    filed_ts_s: float | None = None
    filed_wall_s: float | None = None


@dataclass
class VideoRun:
    video: TruthVideo
    found: list[FoundEvent]
    duration_s: float
    frames: int
    wall_s: float
    frame_wall_s: list[tuple[float, float]]  # (ts_s, wall time) per frame

    def wall_at(self, ts_s: float) -> float | None:
        """Wall time at which the first frame at or after ``ts_s`` was taken."""
        stamps = [ts for ts, _ in self.frame_wall_s]
        index = bisect.bisect_left(stamps, ts_s - 1e-6)
        return self.frame_wall_s[index][1] if index < len(stamps) else None


def load_truth(path: str | Path, *, videos_dir: Path | None = None) -> list[TruthVideo]:
    """Read a truth file (format in the module doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"truth file {path}: not found") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"truth file {path}: not valid JSON/YAML: {exc}") from exc
    entries = data.get("videos") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"truth file {path}: expected a list of videos")
    base = videos_dir or path.parent
    return [_truth_video(entry, base, path) for entry in entries]


def _truth_video(entry: dict[str, Any], base: Path, truth_path: Path) -> TruthVideo:
    if "file" not in entry:
        raise ConfigError(f"truth file {truth_path}: a video has no 'file'")
    video = base / entry["file"]
    where = f"truth file {truth_path}, video {entry['file']}"
    fps = entry.get("fps")
    events, activities = [], []
    for item in entry.get("events", []):
        category = _category_of(item, where)
        if category is None:
            activities.append(str(item.get("type", "?")))
            continue
        start_s, end_s = _span_s(item, fps, where)
        events.append(TrueEvent(category, start_s, end_s))
    return TruthVideo(
        path=video,
        camera=_camera_for(entry, video, truth_path),
        events=events,
        activities=activities,
    )


def _category_of(item: dict[str, Any], where: str) -> Category | None:
    name = item.get("category")
    if name is None:
        kind = item.get("type")
        if kind in TYPE_TO_CATEGORY:
            return TYPE_TO_CATEGORY[kind]
        return Category(kind) if kind in {c.value for c in Category} else None
    try:
        return Category(name)
    except ValueError:
        known = ", ".join(c.value for c in Category)
        raise ConfigError(
            f"{where}: unknown category {name!r} (known: {known})"
        ) from None


def _span_s(item: dict[str, Any], fps: float | None, where: str) -> tuple[float, float]:
    if "start_s" in item and "end_s" in item:
        start_s, end_s = float(item["start_s"]), float(item["end_s"])
    else:
        frames = item.get("falling_frames") or item.get("frames")
        if not (isinstance(frames, list) and len(frames) == 2):
            raise ConfigError(
                f"{where}: a problem event needs start_s/end_s or frames [first, last]"
            )
        if not fps:
            raise ConfigError(f"{where}: events given in frames need the video's fps")
        start_s, end_s = frames[0] / fps, (frames[1] + 1) / fps
    if end_s < start_s:
        raise ConfigError(f"{where}: event ends ({end_s}) before it starts ({start_s})")
    return start_s, end_s


def _camera_for(entry: dict[str, Any], video: Path, truth_path: Path) -> CameraConfig:
    if "camera" in entry and "camera_file" in entry:
        raise ConfigError(f"truth file {truth_path}: give 'camera' or 'camera_file'")
    if "camera_file" in entry:
        return load_camera_file(truth_path.parent / entry["camera_file"])
    if isinstance(entry.get("camera"), dict):
        try:
            return CameraConfig.model_validate(entry["camera"])
        except ValueError as exc:
            raise ConfigError(f"truth file {truth_path}: camera: {exc}") from None
    return CameraConfig.default_for(str(video))


class _FrameClock:
    """An analyzer that only notes when each frame reached the analyzers, and
    moves ``on_advance_s`` by the stream seconds since the previous frame."""

    name = "frame-clock"

    def __init__(self, on_advance_s: Callable[[float], None] | None = None) -> None:
        self.stamps: list[tuple[float, float]] = []
        self._on_advance_s = on_advance_s

    def process(self, frame: Frame) -> list[Event]:
        if self._on_advance_s is not None:
            previous_s = self.stamps[-1][0] if self.stamps else 0.0
            self._on_advance_s(max(0.0, frame.ts_s - previous_s))
        self.stamps.append((frame.ts_s, time.time()))
        return []

    def finish(self) -> list[Event]:
        return []


class _TimedSink(MemorySink):
    """Notes when each ticket is filed. A recording files in the worker's
    own thread between frames, so the clock's newest frame is the stream time
    of the filing."""

    def __init__(self, clock: _FrameClock) -> None:
        super().__init__()
        self._clock = clock
        self.filed_at: dict[str, tuple[float, float]] = {}

    def file(self, event: Event) -> FiledTicket:
        ticket = super().file(event)
        stream_s = self._clock.stamps[-1][0] if self._clock.stamps else None
        if stream_s is not None:
            self.filed_at.setdefault(event.event_id, (stream_s, time.time()))
        return ticket


def run_video(
    video: TruthVideo,
    load_detector: Callable[[str], object],
    *,
    evidence_dir: Path | None = None,
    on_advance_s: Callable[[float], None] | None = None,
) -> VideoRun:
    """Run one video through the deployed pipeline and collect its events."""
    from vision.evidence.local import LocalDirStore
    from vision.evidence.writer import EvidenceWriter
    from vision.pipeline import build_analyzers, run_source

    clock = _FrameClock(on_advance_s)
    analyzers = [clock, *build_analyzers(video.camera, load_detector)]
    sink = _TimedSink(clock)
    with tempfile.TemporaryDirectory(prefix="citywatch-eval-") as scratch:
        store = LocalDirStore(evidence_dir or Path(scratch))
        started = time.perf_counter()
        run = run_source(
            str(video.path),
            video.camera,
            analyzers=analyzers,  # type: ignore[arg-type]
            writer=EvidenceWriter(store),
            sink=sink,
        )
        wall_s = time.perf_counter() - started
    found = [
        _found_event(event, sink.filed_at.get(event.event_id))
        for event, _ in run.stats.filed
    ]
    return VideoRun(
        video=video,
        found=found,
        duration_s=run.info.duration_s or run.stats.last_ts_s,
        frames=run.stats.frames_in,
        wall_s=wall_s,
        frame_wall_s=clock.stamps,
    )


def _found_event(event: Event, filed_at: tuple[float, float] | None) -> FoundEvent:
    filed_ts_s, filed_wall_s = filed_at or (None, None)
    return FoundEvent(
        category=event.category,
        started_ts_s=event.started_ts_s,
        ended_ts_s=event.ended_ts_s,
        detected_ts_s=event.detected_ts_s,
        detected_wall_s=event.detected_at.timestamp(),
        event_id=event.event_id,
        filed_ts_s=filed_ts_s,
        filed_wall_s=filed_wall_s,
    )


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Overlap over union of two closed intervals; 1.0 for the same instant."""
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if overlap < 0:
        return 0.0
    return overlap / union if union > 0 else 1.0


def match_events(
    truth: list[TrueEvent], found: list[FoundEvent]
) -> list[tuple[int, int, float]]:
    """One-to-one (truth index, found index, tIoU) pairs of overlapping events
    of the same category, best tIoU first."""
    candidates = []
    for t, true_event in enumerate(truth):
        for f, event in enumerate(found):
            if event.category is not true_event.category:
                continue
            span = (event.started_ts_s, event.ended_ts_s)
            overlap = min(span[1], true_event.end_s) - max(span[0], true_event.start_s)
            if overlap >= 0:
                iou = temporal_iou(span, (true_event.start_s, true_event.end_s))
                candidates.append((iou, -overlap, t, f))
    pairs, used_truth, used_found = [], set(), set()
    for iou, _, t, f in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if t in used_truth or f in used_found:
            continue
        used_truth.add(t)
        used_found.add(f)
        pairs.append((t, f, iou))
    return pairs


def score_runs(runs: list[VideoRun]) -> dict[str, Any]:
    """Per-category figures over all videos, and a row per video."""
    categories = sorted(
        {e.category for r in runs for e in r.video.events}
        | {e.category for r in runs for e in r.found},
        key=lambda c: c.value,
    )
    per_category = {c.value: _score_category(c, runs) for c in categories}
    return {
        "per_category": per_category,
        "overall": _overall(per_category),
        "videos": [_video_row(run) for run in runs],
    }


# Delays from a true event to what the camera did, each mean over matches.
_DELAYS = (
    "time_to_alert_stream_s",
    "time_to_alert_wall_s",
    "time_to_ticket_stream_s",
    "time_to_ticket_wall_s",
    "alert_after_end_stream_s",
)


def _score_category(category: Category, runs: list[VideoRun]) -> dict[str, Any]:
    tp = fp = fn = 0
    ious: list[float] = []
    delays: dict[str, list[float]] = {key: [] for key in _DELAYS}
    negative_hours, negative_false = 0.0, 0
    for run in runs:
        truth = [e for e in run.video.events if e.category is category]
        found = [e for e in run.found if e.category is category]
        pairs = match_events(truth, found)
        tp += len(pairs)
        fp += len(found) - len(pairs)
        fn += len(truth) - len(pairs)
        for t, f, iou in pairs:
            ious.append(iou)
            for key, value in _delays(truth[t], found[f], run).items():
                if value is not None:
                    delays[key].append(value)
        if not truth:
            negative_hours += run.duration_s / 3600.0
            negative_false += len(found)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    alert, after_end = (
        delays["time_to_alert_stream_s"],
        delays["alert_after_end_stream_s"],
    )
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "mean_temporal_iou": _mean(ious),
        **{key: _mean(values) for key, values in delays.items()},
        "time_to_alert_stream_max_s": max(alert) if alert else None,
        "alert_after_end_stream_max_s": max(after_end) if after_end else None,
        "negative_footage_h": negative_hours,
        "false_alarms_on_negative_footage": negative_false,
        "false_alarms_per_camera_hour": (
            negative_false / negative_hours if negative_hours else None
        ),
    }


def _delays(
    truth: TrueEvent, event: FoundEvent, run: VideoRun
) -> dict[str, float | None]:
    """Stream seconds from the true start to the decision and to the ticket
    (wall seconds beside each, from when the true start's frame was analysed),
    and from the true end to the decision."""
    wall_start = run.wall_at(truth.start_s)

    def since(stamp: float | None, origin: float | None) -> float | None:
        return None if stamp is None or origin is None else stamp - origin

    return {
        "time_to_alert_stream_s": event.detected_ts_s - truth.start_s,
        "time_to_alert_wall_s": since(event.detected_wall_s, wall_start),
        "time_to_ticket_stream_s": since(event.filed_ts_s, truth.start_s),
        "time_to_ticket_wall_s": since(event.filed_wall_s, wall_start),
        "alert_after_end_stream_s": event.detected_ts_s - truth.end_s,
    }


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        # No event found and none expected: nothing was wrong.
        if precision is None and recall is None:
            return None
        return 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _overall(per_category: dict[str, Any]) -> dict[str, Any]:
    totals = {
        k: sum(row[k] for row in per_category.values()) for k in ("tp", "fp", "fn")
    }
    precision = (
        totals["tp"] / (totals["tp"] + totals["fp"])
        if totals["tp"] + totals["fp"]
        else None
    )
    recall = (
        totals["tp"] / (totals["tp"] + totals["fn"])
        if totals["tp"] + totals["fn"]
        else None
    )
    f1 = _f1(precision, recall)
    if f1 is None:
        f1 = 1.0  # nothing expected, nothing found: every decision was right
    return {**totals, "precision": precision, "recall": recall, "f1": f1}


def _video_row(run: VideoRun) -> dict[str, Any]:
    return {
        "video": run.video.path.name,
        "camera_id": run.video.camera.camera_id,
        "duration_s": round(run.duration_s, 3),
        "frames": run.frames,
        "wall_s": round(run.wall_s, 2),
        "truth": [
            {"category": e.category.value, "start_s": e.start_s, "end_s": e.end_s}
            for e in run.video.events
        ],
        "not_problems": run.video.activities,
        "found": [
            {
                "category": e.category.value,
                "started_ts_s": round(e.started_ts_s, 3),
                "ended_ts_s": round(e.ended_ts_s, 3),
                "detected_ts_s": round(e.detected_ts_s, 3),
            }
            for e in run.found
        ],
    }


def evaluate_events(
    truth_path: Path,
    load_detector: Callable[[str], object],
    *,
    videos_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run and score every video of a truth file; ``progress`` draws a bar
    over the stream seconds of all its videos."""
    videos = load_truth(truth_path, videos_dir=videos_dir)
    runs = []
    total_s = _total_duration_s(videos) if progress else None
    with ProgressBar(
        "events", total_s, unit="video s", rate_unit="x real time", enabled=progress
    ) as bar:
        for video in videos:
            logger.info("eval events: running %s", video.path.name)
            runs.append(run_video(video, load_detector, on_advance_s=bar.advance))
    return {"truth": str(truth_path), **score_runs(runs)}


def _total_duration_s(videos: list[TruthVideo]) -> float | None:
    """Stream seconds of all videos, from their headers; None if one lacks it."""
    from vision.ingest.sources import VideoSource

    total_s = 0.0
    for video in videos:
        with VideoSource(str(video.path)) as source:
            if source.info.duration_s is None:
                return None
            total_s += source.info.duration_s
    return total_s


def render_events_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Event accuracy: {report['truth']}",
        "",
        "Events matched to truth by time overlap (one-to-one, best temporal IoU "
        "first). Time to alert: stream seconds from the true start to the "
        "event's decision; wall seconds beside it. Time to ticket: the same to "
        "the ticket, filed once the clip's post-roll is recorded (or the "
        "recording ends). Alert after end: stream seconds from the true end "
        "(the object left the view or landed) to the decision.",
        "",
        "| category | TP | FP | FN | precision | recall | F1 | mean tIoU | "
        "alert (stream s) | alert (wall s) | ticket (stream s) | ticket (wall s) "
        "| alert after end (s) | false alarms / camera-hour |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["per_category"].items():
        lines.append(
            f"| {name} | {row['tp']} | {row['fp']} | {row['fn']} | "
            f"{_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['f1'])} | "
            f"{_fmt(row['mean_temporal_iou'])} | "
            f"{_fmt(row['time_to_alert_stream_s'])} | "
            f"{_fmt(row['time_to_alert_wall_s'])} | "
            f"{_fmt(row['time_to_ticket_stream_s'])} | "
            f"{_fmt(row['time_to_ticket_wall_s'])} | "
            f"{_fmt(row['alert_after_end_stream_s'])} | "
            f"{_fmt(row['false_alarms_per_camera_hour'], 1)} |"
        )
    overall = report["overall"]
    lines += [
        "",
        f"Overall: TP {overall['tp']}, FP {overall['fp']}, FN {overall['fn']}, "
        f"F1 {_fmt(overall['f1'])}.",
        "",
        "| video | duration s | truth | found | not problems |",
        "|---|---|---|---|---|",
    ]
    for row in report["videos"]:
        truth = ", ".join(
            f"{t['category']} {t['start_s']:.2f}-{t['end_s']:.2f}" for t in row["truth"]
        )
        found = ", ".join(
            f"{f['category']} {f['started_ts_s']:.2f}-{f['ended_ts_s']:.2f}"
            for f in row["found"]
        )
        lines.append(
            f"| {row['video']} | {row['duration_s']} | {truth or '-'} | "
            f"{found or '-'} | {', '.join(row['not_problems']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
