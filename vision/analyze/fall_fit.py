"""Does a track fall like a dropped object seen from below?

A body dropped from rest moves along ``s = (t - t0)**2`` (times g/2) in the
world. A pinhole camera maps points of one line projectively, so the image row
is ``y(t) = (b + a*s) / (1 + c*s)``: a parabola when the object keeps its
distance (c = 0), faster than a parabola when it comes nearer (c < 0), which
is what a camera at the foot of a building looking up sees. For a fixed
release time ``t0`` the model is linear in (b, a, c), so a search over ``t0``
with small least-squares fits finds it. The column gets the same denominator
plus a term linear in time for sideways drift.

A track passes when the model explains it within the position and timing
noise of the measurements, it moves mostly downward, its speed grows by a
clear margin, and the falling part lasts at least ``min_fall_s``. Birds (level
or rising), drifting leaves (steady speed, swinging), insects (erratic) and
swaying branches (back and forth) all fail one of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, slots=True)
class FallCriteria:
    min_fall_s: float = 0.3
    min_points: int = 6
    # Sightings that each moved clearly on from the one before: a fall is
    # seen falling, not inferred from a thing at rest and two far-off blobs.
    min_moving_steps: int = 4
    max_speed_px_s: float = 4000.0
    min_observed_speed_ratio: float = 1.3
    max_stall_share: float = 0.1
    max_angle_from_down_deg: float = 60.0
    # A dropped or thrown object's path bows away from the straight line
    # between its ends by at most an eighth of that line's length (a throw
    # from rest traces half a parabola); a leaf swinging as it drifts, or a
    # chain of unrelated blobs, strays much further.
    max_path_bow: float = 0.25
    min_drop_px: float = 12.0
    # A thrown object is seen falling many times its own size: a 10 cm
    # object falls 0.7 m in its first 0.4 s, and a view that shows floors of
    # a facade shows metres of any fall. A walking person's legs or a bag
    # swinging move about their own size, and a leaf fluttering down speeds
    # up for a few of its sizes at a time.
    min_drop_sizes: float = 7.0
    # An object close to the camera is large in the picture and leaves the
    # view before it has fallen that many of its sizes; instead it crosses a
    # good share of the watched region.
    min_drop_region_share: float = 0.25
    min_drop_sizes_when_near: float = 2.0
    max_residual: float = 1.6
    min_speed_ratio: float = 1.4
    min_gain_over_steady: float = 0.3
    max_trace_back_s: float = 2.5
    timing_jitter_frames: float = 0.35
    max_timing_jitter_s: float = 0.015
    # Where the verticals of the view meet (image pixels, usually above the
    # frame), when the camera file gives it; ``None`` means image down is
    # down everywhere.
    vertical_vanishing_point_xy: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class FallFit:
    """The fitted fall and the figures the decision was made on."""

    passed: bool
    reason: str
    t0_s: float = math.nan
    y_coef: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    x_coef: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    residual: float = math.nan
    steady_residual: float = math.nan
    speed_start_px_s: float = math.nan
    speed_end_px_s: float = math.nan
    angle_from_down_deg: float = math.nan
    fall_s: float = 0.0
    inliers: tuple[int, ...] = ()
    stalls: int = 0
    steps: int = 0
    point_residuals: np.ndarray | None = field(default=None, repr=False)

    def position(self, ts_s: float) -> tuple[float, float]:
        """Fitted image position at ``ts_s``."""
        tau = ts_s - self.t0_s
        b, a, c = self.y_coef
        d, e, k = self.x_coef
        denominator = 1.0 + c * tau * tau
        return (
            (d + e * tau * tau + k * tau) / denominator,
            (b + a * tau * tau) / denominator,
        )

    @property
    def score(self) -> float:
        """0-1: how clearly this is a fall (fit quality, length, speed-up)."""
        if not self.passed:
            return 0.0
        fit = max(0.0, 1.0 - self.residual / 4.0)
        length = min(1.0, self.fall_s / 0.8)
        ratio = self.speed_end_px_s / max(self.speed_start_px_s, 1e-6)
        speed_up = min(1.0, math.log(max(ratio, 1.0)) / math.log(4.0))
        return round(0.4 + 0.6 * (fit * 0.4 + length * 0.3 + speed_up * 0.3), 3)


def fit_fall(
    ts_s: np.ndarray,
    xy: np.ndarray,
    sizes_px: np.ndarray,
    criteria: FallCriteria,
) -> FallFit:
    """Fit the projective fall model to one track and test it.

    Sightings that the best fit misses by far (a ghost left by the codec, a
    neighbouring blob taken for the object) are dropped one at a time, up to
    a fifth of the track; ``FallFit.inliers`` lists the ones kept.
    """
    keep = np.arange(len(ts_s))
    fit = _fit_once(ts_s, xy, sizes_px, criteria)
    budget = len(ts_s) // 5
    while fit.point_residuals is not None and budget > 0:
        worst = int(np.argmax(fit.point_residuals))
        if fit.point_residuals[worst] < 3.0:
            break
        keep = np.delete(keep, worst)
        budget -= 1
        fit = _fit_once(ts_s[keep], xy[keep], sizes_px[keep], criteria)
    t_first = float(ts_s[keep[0]]) if len(keep) else 0.0
    return replace(fit, inliers=tuple(int(i) for i in keep), t0_s=fit.t0_s + t_first)


def _fit_once(
    ts_s: np.ndarray, xy: np.ndarray, sizes_px: np.ndarray, criteria: FallCriteria
) -> FallFit:
    if len(ts_s) < criteria.min_points:
        return FallFit(False, "too few sightings")
    t = np.asarray(ts_s, float) - float(ts_s[0])
    x, y = xy[:, 0].astype(float), xy[:, 1].astype(float)
    if t[-1] < criteria.min_fall_s:
        return FallFit(False, "too short")

    drop, angle = drop_and_angle(
        (x[0], y[0]), (x[-1], y[-1]), criteria.vertical_vanishing_point_xy
    )
    if drop < criteria.min_drop_px:
        return FallFit(False, "not downward", angle_from_down_deg=angle)
    if angle > criteria.max_angle_from_down_deg:
        return FallFit(False, "not mostly downward", angle_from_down_deg=angle)

    sizes = np.asarray(sizes_px, float)
    if _bows(x, y, sizes, criteria):
        return FallFit(False, "swings sideways", angle_from_down_deg=angle)
    if not _keeps_descending(y, sizes):
        return FallFit(False, "goes up and down", angle_from_down_deg=angle)
    if not _speeds_up(t, y, criteria):
        return FallFit(False, "speed does not grow", angle_from_down_deg=angle)

    sigma_px = 1.0 + 0.15 * sizes
    dt_s = float(np.median(np.diff(t))) if len(t) > 1 else 0.04
    # Frame-rate conversion shifts a frame's content by up to a third of a
    # frame of a 25-30 fps source; slower streams are not converted that way.
    jitter_s = min(criteria.timing_jitter_frames * dt_s, criteria.max_timing_jitter_s)
    best = _search_t0(t, y, sigma_px, jitter_s, criteria)
    if best is None:
        return FallFit(False, "no fall fits", angle_from_down_deg=angle)
    t0, y_coef, residual = best
    return _judge(t, x, y, sigma_px, jitter_s, t0, y_coef, residual, angle, criteria)


def _judge(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    sigma_px: np.ndarray,
    jitter_s: float,
    t0: float,
    y_coef: tuple[float, float, float],
    residual: float,
    angle: float,
    criteria: FallCriteria,
) -> FallFit:
    speed = _speed_y(t, t0, y_coef)
    sigma = np.sqrt(sigma_px**2 + (speed * jitter_s) ** 2)
    x_coef, x_error = _fit_x(t, x, t0, y_coef[2], sigma)
    y_error = (_row(t, t0, y_coef) - y) / sigma
    point_residuals = np.hypot(x_error, y_error)
    x_residual = float(np.sqrt(np.mean(x_error**2)))
    steady = _steady_residual(t, y, sigma)
    start = max(t[0], t0)
    fall_s = float(t[-1] - start)
    speed_start = float(_speed_y(np.array([start]), t0, y_coef)[0])
    speed_start = max(speed_start, float(speed[0]))
    speed_end = float(speed[-1])
    fit = FallFit(
        passed=False,
        reason="",
        t0_s=t0,
        y_coef=y_coef,
        x_coef=x_coef,
        residual=max(residual, x_residual),
        steady_residual=steady,
        speed_start_px_s=speed_start,
        speed_end_px_s=speed_end,
        angle_from_down_deg=angle,
        fall_s=fall_s,
        point_residuals=point_residuals,
        stalls=_stalls(t, y, t0, y_coef, sigma_px),
        steps=int(np.sum(t[1:] > t0)),
    )
    reason = _first_failure(fit, speed_start, speed_end, criteria)
    return _with_verdict(fit, reason)


def _first_failure(
    fit: FallFit, speed_start: float, speed_end: float, criteria: FallCriteria
) -> str:
    if fit.residual > criteria.max_residual:
        return "does not move like a fall"
    if speed_end < criteria.min_speed_ratio * max(speed_start, 1e-6):
        return "speed does not grow"
    if speed_end > criteria.max_speed_px_s:
        return "faster than a fall in this view"
    if fit.steady_residual < fit.residual + criteria.min_gain_over_steady:
        return "steady motion explains it as well"
    if fit.fall_s < criteria.min_fall_s:
        return "falls too briefly"
    if fit.stalls > criteria.max_stall_share * max(fit.steps, 1):
        return "stops and starts"
    return ""


def _with_verdict(fit: FallFit, reason: str) -> FallFit:
    return replace(fit, passed=not reason, reason=reason or "falls")


def _search_t0(
    t: np.ndarray,
    y: np.ndarray,
    sigma_px: np.ndarray,
    jitter_s: float,
    criteria: FallCriteria,
) -> tuple[float, tuple[float, float, float], float] | None:
    """Release time, row coefficients and normalised residual of the best fit.

    All candidate release times are solved at once through their 3x3 normal
    equations, so a track costs well under a millisecond.
    """
    duration = float(t[-1])
    t0 = np.linspace(-criteria.max_trace_back_s, duration * 0.7, 160)
    s = (t[None, :] - t0[:, None]) ** 2
    weight = 1.0 / sigma_px[None, :]
    design = np.stack([np.ones_like(s), s, -y[None, :] * s], axis=2) * weight[..., None]
    target = y[None, :] * weight
    normal = np.einsum("kni,knj->kij", design, design)
    normal += np.eye(3)[None] * 1e-9 * np.trace(normal, axis1=1, axis2=2)[:, None, None]
    rhs = np.einsum("kni,kn->ki", design, target)
    coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
    b, a, c = coef[:, 0:1], coef[:, 1:2], coef[:, 2:3]

    denominator = 1.0 + c * s
    # The object must stay in front of the camera and move down the image.
    # A slower-than-parabola fall would mean the object moves away from a
    # camera looking up at it: allow only a little of that, for noise.
    valid = (
        (denominator.min(axis=1) > 0.05)
        & (denominator.max(axis=1) < 1.1)
        & (a[:, 0] - b[:, 0] * c[:, 0] > 0)
    )
    if not valid.any():
        return None
    predicted = (b + a * s) / np.where(denominator > 0.05, denominator, 0.05)
    tau = t[None, :] - t0[:, None]
    speed = (
        (a - b * c) * 2.0 * tau / np.where(denominator > 0.05, denominator, 0.05) ** 2
    )
    sigma = np.sqrt(sigma_px[None, :] ** 2 + (speed * jitter_s) ** 2)
    residual = np.sqrt(np.mean(((predicted - y[None, :]) / sigma) ** 2, axis=1))
    residual[~valid] = np.inf
    k = int(np.argmin(residual))
    return (
        float(t0[k]),
        (float(b[k, 0]), float(a[k, 0]), float(c[k, 0])),
        float(residual[k]),
    )


def _fit_x(
    t: np.ndarray, x: np.ndarray, t0: float, c: float, sigma: np.ndarray
) -> tuple[tuple[float, float, float], float]:
    s = (t - t0) ** 2
    denominator = 1.0 + c * s
    design = np.column_stack([np.ones_like(s), s, t - t0]) / sigma[:, None]
    target = x * denominator / sigma
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    d, e, k = (float(v) for v in coef)
    predicted = (d + e * s + k * (t - t0)) / denominator
    return (d, e, k), (predicted - x) / sigma


def _bows(
    x: np.ndarray, y: np.ndarray, sizes_px: np.ndarray, criteria: FallCriteria
) -> bool:
    """More than one point in ten far off the straight line between the ends.

    Counting points rather than taking the farthest spares a track with one
    stray sighting (a codec ghost), which the fit then drops.
    """
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    length = math.hypot(dx, dy)
    off_line = np.abs(dy * (x - x[0]) - dx * (y - y[0])) / max(length, 1e-6)
    limit = criteria.max_path_bow * length + 2.0 + 0.5 * sizes_px
    return int(np.sum(off_line > limit)) > max(1, len(x) // 10)


def _keeps_descending(y: np.ndarray, sizes_px: np.ndarray) -> bool:
    """At most one step in eight may go up by more than the blob's jitter."""
    rises = np.diff(y) < -(2.0 + 0.3 * sizes_px[1:])
    return int(rises.sum()) <= len(y) // 8


def _speeds_up(t: np.ndarray, y: np.ndarray, criteria: FallCriteria) -> bool:
    """Measured downward speed of the later half beats the earlier half."""
    middle = len(t) // 2
    early = (y[middle] - y[0]) / max(t[middle] - t[0], 1e-6)
    late = float(y[-1] - y[middle]) / max(float(t[-1] - t[middle]), 1e-6)
    early = float(early)
    return late > 0 and late >= criteria.min_observed_speed_ratio * max(early, 0.0)


def _stalls(
    t: np.ndarray,
    y: np.ndarray,
    t0: float,
    coef: tuple[float, float, float],
    sigma_px: np.ndarray,
) -> int:
    """Steps after release that cover far less than the fall says they should.

    A falling object never pauses; a chain of flickering leaves does.
    """
    expected = np.diff(_row(t, t0, coef))
    observed = np.diff(y)
    noise = 2.0 * sigma_px[1:]
    clear = (expected > 2.0 * noise) & (t[1:] > t0)
    return int(np.sum(clear & (observed < 0.35 * expected)))


def _steady_residual(t: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> float:
    """How well constant speed explains the rows (the leaf or rain case)."""
    design = np.column_stack([np.ones_like(t), t]) / sigma[:, None]
    coef, *_ = np.linalg.lstsq(design, y / sigma, rcond=None)
    predicted = coef[0] + coef[1] * t
    return float(np.sqrt(np.mean(((predicted - y) / sigma) ** 2)))


def _row(t: np.ndarray, t0: float, coef: tuple[float, float, float]) -> np.ndarray:
    b, a, c = coef
    s = (t - t0) ** 2
    return (b + a * s) / (1.0 + c * s)


def _speed_y(t: np.ndarray, t0: float, coef: tuple[float, float, float]) -> np.ndarray:
    """Downward image speed dy/dt of the fitted row, px/s."""
    b, a, c = coef
    tau = t - t0
    s = tau**2
    return (a - b * c) * 2.0 * tau / (1.0 + c * s) ** 2


def drop_and_angle(
    start_xy: tuple[float, float],
    end_xy: tuple[float, float],
    vertical_vanishing_point_xy: tuple[float, float] | None,
) -> tuple[float, float]:
    """How far a path went down, and how many degrees it strays from down.

    A camera looking steeply up at a facade sees its verticals converge on a
    point above the picture, and a fall off the picture's centre runs along
    them, slanting outward: measured against image down, a fall near the
    edge of such a view looks sideways. Where the camera file gives that
    point, down is the line from it through where the path starts.
    """
    dx, dy = end_xy[0] - start_xy[0], end_xy[1] - start_xy[1]
    down_x, down_y = _down_at(start_xy, vertical_vanishing_point_xy)
    along = dx * down_x + dy * down_y
    across = abs(dx * down_y - dy * down_x)
    return along, math.degrees(math.atan2(across, max(along, 1e-9)))


def _down_at(
    xy: tuple[float, float], vanishing_point_xy: tuple[float, float] | None
) -> tuple[float, float]:
    """Unit vector of world down at an image point (image down by default)."""
    if vanishing_point_xy is None:
        return 0.0, 1.0
    dx, dy = xy[0] - vanishing_point_xy[0], xy[1] - vanishing_point_xy[1]
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return 0.0, 1.0
    # Above the view the point is where "up" meets; below, where "down" does
    # (a camera looking down from a pole). Down always has the image rows
    # growing when the camera is not rolled.
    sign = 1.0 if dy >= 0 else -1.0
    return sign * dx / length, sign * dy / length
