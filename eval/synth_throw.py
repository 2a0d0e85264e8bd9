"""Synthetic throw footage: falling objects and look-alikes on a real facade.

A falling object is placed on a real facade picture and moved by physics: it
is released at a chosen pixel, on the facade plane a given distance from a
camera at the foot of the building that looks up with a given tilt, and falls
under gravity (with a little outward speed) until it reaches the ground or
leaves the view. Its drawn size follows its distance, exposure smears it
along its path, and the sensor adds noise. Distractors that must not be taken
for a throw can be mixed in: birds on level or rising paths, drifting leaves,
rain streaks, lights switching on and a shaking camera.

``render(spec, background)`` yields ``Frame`` objects and the truth;
``sweep(...)`` runs the throw analyzer over a grid of specs and returns one
row per clip, for tests and for the eval harness.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from vision.analyze.throw import ThrowAnalyzer
from vision.config import CameraConfig
from vision.ingest.sources import VideoSource
from vision.types import Event, Frame

GRAVITY_M_S2 = 9.81
CAMERA_HEIGHT_M = 1.5
DISTRACTORS = ("bird_level", "bird_rising", "leaf", "rain", "lights", "shake")
_BACKGROUND_CLIP = "data/videos/throw_facade_ball_720p30.mp4"
# Frames of that clip after the ball has left the view.
_EMPTY_FRAME_INDEX = 70
_MAX_DURATION_S = 6.0


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """One synthetic clip. Pixel sizes are in the rendered resolution."""

    resolution_wh: tuple[int, int] = (640, 360)
    fps: float = 25.0
    duration_s: float = 3.0
    throw: bool = True
    release_ts_s: float = 0.8
    release_uv: tuple[float, float] = (320.0, 60.0)
    size_px: float = 8.0
    object_grey: int = 230
    distance_m: float = 12.0
    tilt_deg: float = 48.0
    hfov_deg: float = 90.0
    outward_speed_m_s: float = 0.5
    exposure: float = 0.5
    noise_sigma: float = 2.0
    distractors: tuple[str, ...] = ()
    seed: int = 0


@dataclass(slots=True)
class SynthTruth:
    """Where the object truly was; empty when the clip has no throw."""

    release_ts_s: float | None = None
    release_xy: tuple[float, float] | None = None
    first_ts_s: float | None = None
    last_ts_s: float | None = None
    track: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Camera:
    width: int
    height: int
    focal_px: float
    forward: np.ndarray
    down: np.ndarray

    @classmethod
    def from_spec(cls, spec: SynthSpec) -> _Camera:
        width, height = spec.resolution_wh
        tilt = math.radians(spec.tilt_deg)
        return cls(
            width=width,
            height=height,
            focal_px=(width / 2) / math.tan(math.radians(spec.hfov_deg) / 2),
            forward=np.array([0.0, math.sin(tilt), math.cos(tilt)]),
            down=np.array([0.0, -math.cos(tilt), math.sin(tilt)]),
        )

    def project(self, point: np.ndarray) -> tuple[float, float, float]:
        """Pixel (u, v) and depth of a point relative to the camera."""
        depth = float(point @ self.forward)
        u = self.width / 2 + self.focal_px * float(point[0]) / depth
        v = self.height / 2 + self.focal_px * float(point @ self.down) / depth
        return u, v, depth

    def ray_to_plane(self, u: float, v: float, plane_z: float) -> np.ndarray:
        """The point on the facade plane z = plane_z seen at pixel (u, v)."""
        right = np.array([1.0, 0.0, 0.0])
        direction = (
            self.forward
            + right * (u - self.width / 2) / self.focal_px
            + self.down * (v - self.height / 2) / self.focal_px
        )
        return direction * (plane_z / direction[2])


def vertical_vanishing_point_xy(spec: SynthSpec) -> tuple[float, float] | None:
    """Where the facade's verticals meet in this camera's picture.

    The camera is not rolled, so the point lies on the centre column, above
    the picture centre by the focal length over the tangent of the tilt; a
    level camera sees verticals parallel and has none.
    """
    if abs(spec.tilt_deg) < 1.0:
        return None
    camera = _Camera.from_spec(spec)
    rise_px = camera.focal_px / math.tan(math.radians(spec.tilt_deg))
    return camera.width / 2, camera.height / 2 - rise_px


def load_background(shared_dir: Path, resolution_wh: tuple[int, int]) -> np.ndarray:
    """A real facade frame without any falling object, at the given size."""
    return _background(str(shared_dir / _BACKGROUND_CLIP), resolution_wh).copy()


@lru_cache(maxsize=8)
def _background(path: str, resolution_wh: tuple[int, int]) -> np.ndarray:
    with VideoSource(path) as source:
        for frame in source.frames():
            if frame.index == _EMPTY_FRAME_INDEX:
                return cv2.resize(
                    frame.image, resolution_wh, interpolation=cv2.INTER_AREA
                )
    raise ValueError(f"{path}: fewer than {_EMPTY_FRAME_INDEX + 1} frames")


def fall_track(spec: SynthSpec) -> list[tuple[float, float, float, float]]:
    """(ts_s, u, v, size_px) of the object at each frame time while in view."""
    camera = _Camera.from_spec(spec)
    start = camera.ray_to_plane(*spec.release_uv, spec.distance_m)
    _, _, start_depth = camera.project(start)
    size_m = spec.size_px * start_depth / camera.focal_px
    track = []
    for ts_s in _frame_times(spec):
        position = _position(start, spec, ts_s - spec.release_ts_s)
        if position is None:
            break
        u, v, depth = camera.project(position)
        if depth <= 0.5 or v > camera.height + spec.size_px:
            break
        track.append((ts_s, u, v, size_m * camera.focal_px / depth))
    return track


def render(spec: SynthSpec, background: np.ndarray) -> tuple[list[Frame], SynthTruth]:
    """All frames of one clip, and the truth about the throw in it."""
    rng = np.random.default_rng(spec.seed)
    camera = _Camera.from_spec(spec)
    base = background.astype(np.float32)
    truth = SynthTruth()
    track = {round(ts, 6): (u, v, s) for ts, u, v, s in fall_track(spec)}
    if spec.throw and track:
        truth.release_ts_s = spec.release_ts_s
        truth.release_xy = spec.release_uv
        truth.track = [(ts, u, v) for ts, (u, v, _) in sorted(track.items())]
        truth.first_ts_s = truth.track[0][0]
        truth.last_ts_s = truth.track[-1][0]
    distractors = [_DISTRACTOR_MAKERS[name](spec, rng) for name in spec.distractors]

    started_at = datetime(2026, 1, 1, tzinfo=UTC)
    frames = []
    for index, ts_s in enumerate(_frame_times(spec)):
        image = base.copy()
        for distractor in distractors:
            image = distractor(image, ts_s)
        if spec.throw:
            _draw_object(image, spec, camera, ts_s)
        image += rng.normal(0.0, spec.noise_sigma, image.shape[:2])[..., None]
        frames.append(
            Frame(
                image=np.clip(image, 0, 255).astype(np.uint8),
                ts_s=ts_s,
                index=index,
                captured_at=started_at + timedelta(seconds=ts_s),
            )
        )
    return frames, truth


def analyze(frames: Iterable[Frame], camera: CameraConfig | None = None) -> list[Event]:
    analyzer = ThrowAnalyzer(camera or CameraConfig(camera_id="synth"))
    events = []
    for frame in frames:
        events += analyzer.process(frame)
    return events + analyzer.finish()


def score_clip(events: list[Event], truth: SynthTruth) -> dict[str, float | int]:
    """Hit, false alarms and origin error of one clip's events."""
    if truth.first_ts_s is None or truth.last_ts_s is None:
        return {"hit": 0, "false_alarms": len(events), "origin_error_px": math.nan}
    hits = [
        e
        for e in events
        if e.started_ts_s <= truth.last_ts_s + 0.1
        and e.ended_ts_s >= truth.first_ts_s - 0.1
    ]
    error = math.nan
    if hits and hits[0].origin and truth.release_xy:
        error = math.hypot(
            hits[0].origin.x - truth.release_xy[0],
            hits[0].origin.y - truth.release_xy[1],
        )
    return {
        "hit": int(bool(hits)),
        "false_alarms": len(events) - min(len(hits), 1),
        "origin_error_px": round(error, 1),
    }


def sweep(
    shared_dir: Path,
    *,
    sizes_px: Iterable[float] = (4.0, 6.0, 10.0, 16.0),
    fps_values: Iterable[float] = (25.0,),
    greys: Iterable[int] = (230, 30),
    seeds: Iterable[int] = range(4),
    distractors: Iterable[str] = (),
    base: SynthSpec | None = None,
) -> list[dict[str, float | int | str]]:
    """Analyse a grid of throw clips (and distractor-only clips); one row each."""
    base = base or SynthSpec()
    background = load_background(shared_dir, base.resolution_wh)
    rows: list[dict[str, float | int | str]] = []
    for size_px, fps, grey, seed in itertools.product(
        sizes_px, fps_values, greys, seeds
    ):
        spec = replace(placed(base, seed), size_px=size_px, fps=fps, object_grey=grey)
        frames, truth = render(spec, background)
        row = score_clip(analyze(frames), truth)
        rows.append(
            {"kind": "throw", "size_px": size_px, "fps": fps, "grey": grey}
            | {"seed": seed}
            | row
        )
    for name, seed in itertools.product(distractors, seeds):
        spec = replace(base, throw=False, distractors=(name,), seed=seed)
        frames, truth = render(spec, background)
        row = score_clip(analyze(frames), truth)
        rows.append({"kind": name, "seed": seed} | row)
    return rows


def placed(spec: SynthSpec, seed: int) -> SynthSpec:
    """A release point, height, distance and tilt that vary with the seed.

    The camera tilt is chosen so that a release point 15-45 m above the
    camera, on a facade 8-20 m away, shows in the upper part of the view.
    """
    rng = np.random.default_rng(1000 + seed)
    width, height = spec.resolution_wh
    u = float(rng.uniform(0.3, 0.7) * width)
    v = float(rng.uniform(0.05, 0.3) * height)
    height_m = float(rng.uniform(15.0, 45.0))
    distance_m = float(rng.uniform(8.0, 20.0))
    focal_px = (width / 2) / math.tan(math.radians(spec.hfov_deg) / 2)
    above_axis = math.atan((height / 2 - v) / focal_px)
    elevation = math.atan2(height_m, distance_m)
    placed_spec = replace(
        spec,
        seed=seed,
        release_uv=(u, v),
        distance_m=distance_m,
        tilt_deg=math.degrees(elevation - above_axis),
        outward_speed_m_s=float(rng.uniform(0.0, 1.5)),
        release_ts_s=float(rng.uniform(0.6, 1.0)),
        duration_s=_MAX_DURATION_S,
    )
    return with_whole_fall(placed_spec)


def with_whole_fall(spec: SynthSpec) -> SynthSpec:
    """The clip lasts until the object has left the view or landed, plus 0.6 s."""
    track = fall_track(replace(spec, duration_s=_MAX_DURATION_S))
    last_ts_s = track[-1][0] if track else spec.release_ts_s
    return replace(spec, duration_s=min(_MAX_DURATION_S, last_ts_s + 0.6))


def _frame_times(spec: SynthSpec) -> Iterator[float]:
    count = int(spec.duration_s * spec.fps)
    return (round(i / spec.fps, 6) for i in range(count))


def _position(start: np.ndarray, spec: SynthSpec, t_s: float) -> np.ndarray | None:
    """World position t_s after release (before it: at rest); None below ground."""
    t_s = max(t_s, 0.0)
    point = start + np.array(
        [0.0, -0.5 * GRAVITY_M_S2 * t_s * t_s, -spec.outward_speed_m_s * t_s]
    )
    if point[1] < -CAMERA_HEIGHT_M:
        return None
    return point


def _draw_object(
    image: np.ndarray, spec: SynthSpec, camera: _Camera, ts_s: float
) -> None:
    """Draw the object smeared over the exposure, anti-aliased at sub-pixels."""
    start = camera.ray_to_plane(*spec.release_uv, spec.distance_m)
    _, _, start_depth = camera.project(start)
    size_m = spec.size_px * start_depth / camera.focal_px
    samples = 6
    mask = np.zeros(image.shape[:2], np.float32)
    for k in range(samples):
        t = ts_s + spec.exposure / spec.fps * k / samples - spec.release_ts_s
        if t < 0 and k > 0:
            break
        position = _position(start, spec, t)
        if position is None:
            return
        u, v, depth = camera.project(position)
        radius = max(0.5, size_m * camera.focal_px / depth / 2)
        _disc(mask, u, v, radius, 1.0 / samples if t >= 0 else 1.0)
    mask = np.minimum(mask, 1.0)[..., None]
    image *= 1.0 - mask
    image += mask * float(spec.object_grey)


def _disc(mask: np.ndarray, u: float, v: float, radius: float, weight: float) -> None:
    layer = np.zeros_like(mask)
    cv2.circle(
        layer,
        (round(u * 16), round(v * 16)),
        round(radius * 16),
        1.0,
        thickness=-1,
        lineType=cv2.LINE_AA,
        shift=4,
    )
    mask += layer * weight


# Distractors: each maker returns a function drawing it onto a float image.


def _bird(spec: SynthSpec, rng: np.random.Generator, rising: bool):
    width, height = spec.resolution_wh
    speed = rng.uniform(120, 260) * rng.choice([-1, 1])
    x0 = width * (0.1 if speed > 0 else 0.9)
    y0 = rng.uniform(0.2, 0.6) * height
    climb = -rng.uniform(40, 90) if rising else 0.0
    size = rng.uniform(6, 10)

    def draw(image: np.ndarray, ts_s: float) -> np.ndarray:
        x = x0 + speed * ts_s
        y = y0 + climb * ts_s + 3 * math.sin(2 * math.pi * 4 * ts_s)
        flap = 0.6 + 0.4 * abs(math.sin(2 * math.pi * 5 * ts_s))
        axes = (max(1, round(size * flap)), max(1, round(size * 0.35)))
        cv2.ellipse(image, (round(x), round(y)), axes, 0, 0, 360, (35, 35, 35), -1)
        return image

    return draw


def _leaf(spec: SynthSpec, rng: np.random.Generator):
    width, height = spec.resolution_wh
    x0 = rng.uniform(0.3, 0.7) * width
    fall_speed = rng.uniform(35, 70)
    swing = rng.uniform(15, 30)

    def draw(image: np.ndarray, ts_s: float) -> np.ndarray:
        x = x0 + swing * math.sin(2 * math.pi * 0.6 * ts_s)
        y = 0.05 * height + fall_speed * ts_s + 4 * math.cos(2 * math.pi * 1.2 * ts_s)
        angle = 40 * math.sin(2 * math.pi * 0.6 * ts_s)
        cv2.ellipse(
            image, (round(x), round(y)), (6, 3), angle, 0, 360, (60, 140, 90), -1
        )
        return image

    return draw


def _rain(spec: SynthSpec, rng: np.random.Generator):
    width, height = spec.resolution_wh

    def draw(image: np.ndarray, ts_s: float) -> np.ndarray:
        layer = np.zeros(image.shape[:2], np.float32)
        for _ in range(60):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            length = rng.uniform(12, 30)
            cv2.line(
                layer,
                (round(x), round(y)),
                (round(x + 0.2 * length), round(y + length)),
                1.0,
                1,
                cv2.LINE_AA,
            )
        return image + 30.0 * layer[..., None]

    return draw


def _lights(spec: SynthSpec, rng: np.random.Generator):
    width, height = spec.resolution_wh
    windows = [
        (rng.uniform(0.1, 0.8) * width, rng.uniform(0.1, 0.8) * height)
        for _ in range(6)
    ]
    switch_ts = [rng.uniform(0.5, 2.0) for _ in windows]
    global_ts = rng.uniform(1.0, 2.0)

    def draw(image: np.ndarray, ts_s: float) -> np.ndarray:
        for (x, y), on_ts in zip(windows, switch_ts, strict=True):
            if ts_s >= on_ts:
                x1, y1 = round(x), round(y)
                image[y1 : y1 + 18, x1 : x1 + 28] += 70.0
        if ts_s >= global_ts:
            image += 35.0
        return image

    return draw


def _shake(spec: SynthSpec, rng: np.random.Generator):
    start_ts = rng.uniform(0.8, 1.5)

    def draw(image: np.ndarray, ts_s: float) -> np.ndarray:
        if not start_ts <= ts_s <= start_ts + 0.8:
            return image
        dx, dy = rng.integers(-4, 5, size=2)
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        height, width = image.shape[:2]
        return cv2.warpAffine(
            image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT
        )

    return draw


_DISTRACTOR_MAKERS = {
    "bird_level": lambda spec, rng: _bird(spec, rng, rising=False),
    "bird_rising": lambda spec, rng: _bird(spec, rng, rising=True),
    "leaf": _leaf,
    "rain": _rain,
    "lights": _lights,
    "shake": _shake,
}
