"""Motion models' players: the moving pixels grouped by the rhythm of their motion.

A player moves as one body to its own music (every part of it speeds up and slows down together),
and two players play different notes, so they move to different rhythms. The optical flow's speed
(the camera's own motion removed) is followed over the discovery windows at the flow's resolution;
each pixel that moves is described by its speed over time (centred, unit norm: its rhythm, whatever
its amplitude) and, less, by where it is, and k-means groups them. Each group becomes a region of the
feature grid: the cells that hold a good part of its pixels.

Measured (``benchmarks/bench_count.py``-style runs over the held-out synthetic duets, the count
given, SDR of the tracks matched to the truth's players): grouping by rhythm found the players where
grouping the fastest-moving cells by position and look cut the larger player in two and missed the
smaller one (see ``weights/README.md``, session 26).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from avsplit.dsp.camera import remove_camera_motion
from avsplit.inference.clustering import kmeans_euclidean
from avsplit.inference.regions import Region, cells_to_box

#: A pixel moves when its mean speed is at least this fraction of the fastest pixel's.
MOVING_FRACTION = 0.1
#: The flow's speed is averaged over blocks of this many pixels a side before grouping (less noise,
#: fewer points).
RHYTHM_POOL = 2
#: Weight of a pixel's (x, y) position, in [0, 1] units, against its unit-norm rhythm.
RHYTHM_POSITION_WEIGHT = 1.0
#: A grid cell belongs to a group when it holds at least this fraction of the group's densest cell's
#: share of moving pixels.
CELL_FRACTION = 0.25
#: The groupings tried for each k (automatic count): k-means from these seeds in turn.
RHYTHM_SEEDS = (0, 1, 2)


def motion_speed(flow: torch.Tensor) -> np.ndarray:
    """Speed of ``M`` windows' flow ``(M, steps, 2, h', w')``, less the camera's motion, averaged over
    :data:`RHYTHM_POOL`-pixel blocks: ``(M * steps, H, W)``."""
    flow = remove_camera_motion(flow.float())
    speed = torch.hypot(flow[:, :, 0], flow[:, :, 1]).flatten(0, 1)  # (M * steps, h', w')
    if RHYTHM_POOL > 1 and min(speed.shape[-2:]) >= RHYTHM_POOL:
        speed = torch.nn.functional.avg_pool2d(speed[:, None], RHYTHM_POOL)[:, 0]
    return speed.cpu().numpy()


def rhythm_points(speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The moving pixels of ``speed`` ``(T, H, W)``: their ``coords`` ``(n, 2)`` (row, column) and
    clustering points ``(n, T + 2)``: the centred, unit-norm speed series, then the (x, y) position in
    [0, 1] units times :data:`RHYTHM_POSITION_WEIGHT`. Nothing moves: ``n = 0``."""
    _, h, w = speed.shape
    mean = speed.mean(0)
    top = float(mean.max())
    if not top > 0:
        return np.zeros((0, 2), int), np.zeros((0, speed.shape[0] + 2))
    moving = mean >= MOVING_FRACTION * top
    coords = np.argwhere(moving)
    series = speed[:, moving].T.astype(np.float64)  # (n, T)
    series -= series.mean(1, keepdims=True)
    series /= np.linalg.norm(series, axis=1, keepdims=True).clip(min=1e-8)
    position = coords[:, ::-1] / np.array([w, h], float)
    return coords, np.concatenate([series, RHYTHM_POSITION_WEIGHT * position], axis=1)


def group_cells(coords: np.ndarray, fine_shape: tuple[int, int], grid_shape: tuple[int, int]) -> np.ndarray:
    """The feature-grid cells ``(h, w)`` (bool) of a group of moving pixels at ``coords`` ``(n, 2)`` on
    the ``fine_shape`` grid: those holding at least :data:`CELL_FRACTION` of the densest cell's share."""
    fine = np.zeros(fine_shape, np.float32)
    fine[coords[:, 0], coords[:, 1]] = 1.0
    share = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(fine)[None, None], tuple(grid_shape))[0, 0].numpy()
    return share >= CELL_FRACTION * share.max() if share.max() > 0 else np.zeros(grid_shape, bool)


@dataclass
class MovingPixels:
    """A video's moving pixels, found once and grouped for every k (:func:`moving_pixels`)."""

    coords: np.ndarray
    """``(n, 2)`` (row, column) on the ``fine_shape`` grid."""
    points: np.ndarray
    """``(n, T + 2)`` clustering points (:func:`rhythm_points`)."""
    fine_shape: tuple[int, int]
    """``(H, W)`` of the pooled flow grid."""


def moving_pixels(flow: torch.Tensor) -> MovingPixels:
    """The moving pixels of ``M`` windows' flow ``(M, steps, 2, h', w')`` and their rhythms."""
    speed = motion_speed(flow)
    coords, points = rhythm_points(speed)
    return MovingPixels(coords, points, tuple(speed.shape[1:]))


def rhythm_groupings(moving: MovingPixels, k: int, grid_shape: tuple[int, int], video_size: tuple[int, int],
                     seeds: tuple[int, ...] = RHYTHM_SEEDS) -> Iterator[list[Region]]:
    """Groupings of the ``moving`` pixels into ``k`` players (k-means from each of ``seeds``; a
    grouping equal to one already given is skipped): lists of ``k`` :class:`Region` of the
    ``grid_shape`` ``(h, w)`` feature grid, boxes in ``video_size`` pixels. Fewer moving pixels than
    ``k``, or a group with no cell of its own: none."""
    coords, points = moving.coords, moving.points
    if len(points) < k:
        return
    h, w = grid_shape
    given = set()
    for seed in seeds:
        labels = kmeans_euclidean(points, k, seed=seed) if k > 1 else np.zeros(len(points), int)
        partition = frozenset(tuple(np.flatnonzero(labels == j)) for j in range(k))
        if partition in given:
            continue
        given.add(partition)
        cells = [group_cells(coords[labels == j], moving.fine_shape, grid_shape) for j in range(k)]
        if all(c.any() for c in cells):
            yield [Region(c, cells_to_box(c, (w, h), video_size)) for c in cells]
