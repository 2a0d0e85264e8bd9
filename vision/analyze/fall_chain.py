"""Pieces of falling-object tracks: which belong together, which can fall.

A small object is easily lost for a few frames (it crosses a facade band of
its own brightness, the codec smears it), so one fall often reaches the
analyzer as several tracks. These helpers decide whether an earlier track
plausibly leads into a later one, trim the rest before a fall and after a
landing, and make the cheap checks that spare the full fall fit.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np

from vision.analyze.fall_fit import FallCriteria, drop_and_angle
from vision.analyze.fall_track import Sighting
from vision.types import TrajectoryPoint

# A track that ends may be continued by one that starts this soon after it.
STITCH_GAP_S = 0.35
# Places that moved in this share of recent frames are clutter (foliage).
CLUTTER = 0.3


def overlaps(trajectory: list[TrajectoryPoint], sightings: list[Sighting]) -> bool:
    """Half the sightings within the trajectory's time lie on it."""
    times = np.array([p.ts_s for p in trajectory])
    during = [s for s in sightings if times[0] <= s.ts_s <= times[-1]]
    if not during:
        return False
    xs = np.array([p.x for p in trajectory])
    ys = np.array([p.y for p in trajectory])
    near = 0
    for s in during:
        x, y = np.interp(s.ts_s, times, xs), np.interp(s.ts_s, times, ys)
        near += math.hypot(s.x - x, s.y - y) <= 10.0 + 3.0 * s.size_px
    return near * 2 >= len(during)


def points(sightings: list[Sighting]) -> list[TrajectoryPoint]:
    return [TrajectoryPoint(ts_s=s.ts_s, x=s.x, y=s.y) for s in sightings]


def continues_to(earlier: Sighting, chain: list[Sighting]) -> bool:
    """Could ``earlier`` be the same object just before the chain began?"""
    first = chain[0]
    slack = 4.0 + min(first.size_px, 10.0)
    dx, dy = first.x - earlier.x, first.y - earlier.y
    if first.ts_s - earlier.ts_s > STITCH_GAP_S or dy < -slack:
        return False
    if not similar_size(earlier, first):
        return False
    if abs(dx) > abs(dy) + slack:
        return False
    if len(chain) < 2:
        return True
    second = chain[1]
    speed = math.hypot(second.x - first.x, second.y - first.y) / max(
        second.ts_s - first.ts_s, 1e-3
    )
    reach = 1.5 * speed * (first.ts_s - earlier.ts_s) + slack
    return math.hypot(dx, dy) <= reach


def backward_miss_px(chain: list[Sighting], earlier: Sighting) -> float:
    """Distance from ``earlier`` to where the chain's start says it was."""
    head = chain[:4]
    if len(head) < 2:
        return math.hypot(earlier.x - head[0].x, earlier.y - head[0].y)
    t = np.array([s.ts_s for s in head]) - earlier.ts_s
    xy = np.array([(s.x, s.y) for s in head])
    coef, *_ = np.linalg.lstsq(np.vander(t, 2), xy, rcond=None)
    x, y = coef[1]
    return math.hypot(earlier.x - x, earlier.y - y)


def worth_a_look(sightings: list[Sighting]) -> bool:
    """Tracks of one sighting, or that end higher than they began, never fall."""
    return (
        len(sightings) >= 2
        and sightings[-1].y > sightings[0].y
        and not in_clutter(sightings)
    )


def in_clutter(sightings: list[Sighting]) -> bool:
    """Mostly seen where things move all the time (a tree): cannot be told."""
    cluttered = sum(s.clutter > CLUTTER for s in sightings)
    return cluttered * 2 > len(sightings)


def drops(
    sightings: list[Sighting], criteria: FallCriteria, region_height_px: float
) -> bool:
    """Cheap first test: mostly downward, and far enough down.

    Far enough is many of the object's own sizes, or, for an object large in
    the picture, a good share of the watched region's height.
    """
    first, last = sightings[0], sightings[-1]
    drop, angle = drop_and_angle(
        (first.x, first.y), (last.x, last.y), criteria.vertical_vanishing_point_xy
    )
    if drop < criteria.min_drop_px:
        return False

    size_px = statistics.median(s.size_px for s in sightings)
    far = drop >= criteria.min_drop_sizes * size_px
    near = (
        drop >= criteria.min_drop_region_share * region_height_px
        and drop >= criteria.min_drop_sizes_when_near * size_px
    )
    if not (far or near):
        return False
    return angle <= criteria.max_angle_from_down_deg


def moving_steps(sightings: list[Sighting]) -> int:
    """How many sightings moved on from the one before by more than jitter.

    The jitter of a blob's centre grows with its size, but not without end:
    a large object near the camera moves a few pixels a frame as it starts
    to fall, and those steps count.
    """
    return sum(
        math.hypot(b.x - a.x, b.y - a.y) > 1.5 + 0.2 * min(a.size_px, b.size_px, 10.0)
        for a, b in itertools.pairwise(sightings)
    )


def similar_size(a: Sighting, b: Sighting) -> bool:
    """Could two blobs be the same object?

    Its picture grows as it nears the camera and smears with speed, but not
    threefold from one sighting to the next; a blob that does is another
    thing (a branch, a passer-by) that the track ran into.
    """
    return a.size_px <= 3.0 * b.size_px + 6.0 and b.size_px <= 3.0 * a.size_px + 6.0


def moving_part(sightings: list[Sighting]) -> list[Sighting]:
    """Drop the rest before the fall and after landing; keep one of each."""
    start, end = 0, len(sightings) - 1
    while start < end and _near(sightings[0], sightings[start + 1]):
        start += 1
    while end > start and _near(sightings[-1], sightings[end - 1]):
        end -= 1
    return sightings[start : end + 1]


def _near(a: Sighting, b: Sighting) -> bool:
    tolerance = 1.5 + 0.2 * min(a.size_px, b.size_px)
    return math.hypot(a.x - b.x, a.y - b.y) <= tolerance
