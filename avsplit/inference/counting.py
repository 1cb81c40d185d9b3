"""How many sources a video has, and where: grouping the candidate pixels of the feature grid.

:func:`avsplit.inference.discovery.find_regions` computes the candidate pixels' saliency and features over
a few windows of a video; :func:`choose_regions` clusters them into k groups for every k from
:data:`MAX_SOURCES` down and keeps the largest k whose groups are distinct sources. Motion models
group the moving pixels by the rhythm of their motion (:mod:`avsplit.inference.rhythm`), several
groupings per k (:func:`groupings`); appearance models group the cells that stand out by their look
and position.
"""

from __future__ import annotations

import numpy as np
import torch

from avsplit.dsp.camera import remove_camera_motion
from avsplit.inference.clustering import kmeans_euclidean
from avsplit.inference.engine import Heard, Seen, SeparationEngine
from avsplit.inference.regions import Region, cells_to_box
from avsplit.inference.rhythm import MovingPixels, moving_pixels, rhythm_groupings

MAX_SOURCES = 4
#: Clusters whose masks are more similar than this are the same source.
SAME_SOURCE_SIMILARITY = 0.75
#: A cluster must explain at least this share of the separated energy to count as a source.
MIN_SOURCE_SHARE = 0.05
#: Groups whose motion over time correlates more than this move as one (with sounds alike: one source).
SAME_MOTION_CORRELATION = 0.5
#: A group's motion must correlate at least this much with the sound's onsets (spectral flux) for its
#: own rhythm to tell it apart (a silent mover has a rhythm of its own, unrelated to the sound).
SOUND_MOTION_CORRELATION = 0.1
#: Pixels at least this fraction of the frame's highest saliency are candidates for sources.
SALIENT_FRACTION = 0.4
#: Blobs of cells above this fraction of the highest saliency are candidates (each then thresholded at
#: :data:`SALIENT_FRACTION` of its own peak).
BLOB_FRACTION = 0.2
#: Weight of a pixel's (x, y) position, in [0, 1] units, against its unit-norm features when clustering.
POSITION_WEIGHT = 1.0
#: The same for motion models' candidate cells (the fastest-moving), used only where the rhythm
#: grouping has too few moving pixels for the sources asked: players are told apart by where they
#: are, features only break ties.
MOTION_POSITION_WEIGHT = 8.0


def salient_cells(sal: np.ndarray) -> np.ndarray:
    """Cells of ``sal`` ``(h, w)`` that belong to a source: bool ``(h, w)``.

    Each blob that stands out (connected cells above :data:`BLOB_FRACTION` of the highest saliency)
    keeps its cells of at least :data:`SALIENT_FRACTION` of *its own* peak: a player that moves less
    than another (smaller, farther, or playing long notes) keeps its core cells, whatever the
    frame size.
    """
    from scipy import ndimage

    top = max(float(sal.max()), 1e-6)
    blobs, count = ndimage.label(sal >= BLOB_FRACTION * top, structure=np.ones((3, 3)))
    if count == 0:
        return sal >= SALIENT_FRACTION * top
    peaks = np.asarray(ndimage.maximum(sal, blobs, index=np.arange(1, count + 1)))
    own_peak = np.concatenate([[np.inf], peaks])[blobs]  # (h, w); background: never salient
    return sal >= SALIENT_FRACTION * own_peak


def candidate_points(sal: np.ndarray, z: np.ndarray, motion: bool,
                     weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The salient cells of ``sal`` ``(h, w)`` and their clustering points: ``coords`` ``(n, 2)``
    (row, column) and ``points`` ``(n, K + 2)`` (unit-norm features ``z`` ``(h, w, K)``, then the
    (x, y) position in [0, 1] units times ``weight``, by default :data:`MOTION_POSITION_WEIGHT` or
    :data:`POSITION_WEIGHT`)."""
    h, w = sal.shape
    salient = salient_cells(sal)
    coords = np.argwhere(salient)
    zn = z[salient] / np.linalg.norm(z[salient], axis=1, keepdims=True).clip(min=1e-6)
    position = coords[:, ::-1] / np.array([w, h], float)  # (x, y) in [0, 1]
    if weight is None:
        weight = MOTION_POSITION_WEIGHT if motion else POSITION_WEIGHT
    return coords, np.concatenate([zn, weight * position], axis=1)


def group_regions(coords: np.ndarray, labels: np.ndarray, k: int, shape: tuple[int, int], video_size) -> list:
    """One :class:`~avsplit.inference.regions.Region` per non-empty label of ``coords`` ``(n, 2)``."""
    h, w = shape
    regions = []
    for j in range(k):
        cells = np.zeros((h, w), bool)
        members = coords[labels == j]
        cells[members[:, 0], members[:, 1]] = True
        if cells.any():
            regions.append(Region(cells, cells_to_box(cells, (w, h), video_size)))
    return regions


def group_sounds(engine: SeparationEngine, seen: Seen, heard: Heard, regions: list) -> np.ndarray:
    """What each region separates on its own: its own mask (from its pooled features, whatever the
    other regions are) times the mixture's warped magnitude, in each of the ``M`` windows:
    ``(R, M, Fl, T)``."""
    own = engine.masks(heard, engine.vectors(seen, regions), shared=False)  # (M, R, Fl, T)
    return (own * heard.warped).transpose(0, 1).float().cpu().numpy()


def cell_motion(flow: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Optical-flow speed, less the camera's motion, of every step of ``M`` windows' flow
    ``(M, steps, 2, h', w')``, averaged onto
    the feature grid ``shape`` ``(h, w)``: ``(M * steps, h, w)``."""
    flow = remove_camera_motion(flow.float())  # what moves in the scene, not the camera
    speed = torch.hypot(flow[:, :, 0], flow[:, :, 1])  # (M, steps, h', w')
    pooled = torch.nn.functional.adaptive_avg_pool2d(speed, tuple(shape))
    return pooled.flatten(0, 1).cpu().numpy()


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of ``x`` ``(R, n)``: ``(R, R)`` with a zero diagonal."""
    norms = np.linalg.norm(x, axis=1).clip(min=1e-8)
    sim = (x @ x.T) / norms[:, None] / norms[None]
    np.fill_diagonal(sim, 0)
    return sim


def correlation_matrix(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of the rows of ``x`` ``(R, n)``: ``(R, R)`` with a zero diagonal (a constant
    row correlates with nothing)."""
    return cosine_matrix(x - x.mean(1, keepdims=True))


def distinct_sources(sounds: np.ndarray, motion: np.ndarray | None, regions: list, warped: torch.Tensor) -> bool:
    """Whether ``R`` groups are ``R`` sources: each carries at least :data:`MIN_SOURCE_SHARE` of the
    separated energy, no group sounds like the others together (a mix of them), and every two groups
    either sound different (the cosine similarity of their separated magnitudes ``sounds``
    ``(R, ...)`` below :data:`SAME_SOURCE_SIMILARITY`) or move to a different rhythm (the correlation
    of their motion over time, from ``motion`` ``(steps, h, w)``, below :data:`SAME_MOTION_CORRELATION`).
    """
    flat = sounds.reshape(len(sounds), -1)
    shares = flat.sum(1) / max(float(flat.sum()), 1e-8)
    if shares.min() < MIN_SOURCE_SHARE:
        return False
    if len(flat) > 2:
        # a group whose sound is (close to) the others' together is a mix of them, not a source
        rest = flat.sum(0, keepdims=True) - flat
        norms = np.linalg.norm(flat, axis=1).clip(min=1e-8)
        if ((flat * rest).sum(1) / norms / np.linalg.norm(rest, axis=1).clip(min=1e-8)).max() >= SAME_SOURCE_SIMILARITY:
            return False
    same = cosine_matrix(flat) >= SAME_SOURCE_SIMILARITY
    if motion is not None:
        series = np.stack([motion[:, r.cells].mean(1) for r in regions])  # (R, steps)
        # moving to a rhythm of its own tells a group apart only if that rhythm is the sound's
        follows = correlation_matrix(np.concatenate([series, sound_flux(warped, len(series[0]))[None]]))[-1, :-1]
        heard = follows >= SOUND_MOTION_CORRELATION
        same &= (correlation_matrix(series) >= SAME_MOTION_CORRELATION) | ~(heard[:, None] & heard[None, :])
    return not same.any()


def sound_flux(warped: torch.Tensor, steps: int) -> np.ndarray:
    """Spectral flux of the mixture (the summed rise of log magnitude), the sound's onsets, of ``M``
    windows' warped magnitude ``(M, 1, Fl, T)`` averaged onto the motion's ``steps`` in all:
    ``(steps,)``."""
    windows = warped.shape[0]
    log_mag = torch.log1p(warped[:, 0].float() / warped.float().mean().clamp(min=1e-8))  # scale-free
    flux = (log_mag[:, :, 1:] - log_mag[:, :, :-1]).clamp(min=0).sum(1)  # (M, T - 1)
    return torch.nn.functional.adaptive_avg_pool1d(flux[:, None], steps // windows)[:, 0].flatten().cpu().numpy()


def choose_regions(engine: SeparationEngine, seen: Seen, heard: Heard, sal: np.ndarray, z: np.ndarray,
                   video_size: tuple[int, int], num_sources: int | None) -> list:
    """The sources of a video, ordered left to right (see the module doc).

    ``seen`` and ``heard``: the model's view of ``M`` windows of the video (visual features ``(M, K,
    h, w)``, motion models ``(M, steps, K, h, w)`` with their optical flow; mixture magnitude and audio
    features); ``sal`` ``(h, w)`` and ``z`` ``(h, w, K)``: candidate saliency and standardised features.
    With ``num_sources``, the grouping (:func:`groupings`) into that many whose groups sound least
    alike (:func:`most_distinct`); otherwise, from :data:`MAX_SOURCES` down, the first k with a
    grouping whose groups are distinct sources, the least alike of those, else one source.
    """
    motion = cell_motion(seen.flow, sal.shape) if seen.flow is not None else None
    moving = moving_pixels(seen.flow) if seen.flow is not None else None  # found once, grouped for every k
    if num_sources:
        tried = [_with_shares(engine, seen, heard, r) for r in groupings(moving, sal, z, num_sources, video_size)] \
            if num_sources > 1 else []
        if tried:
            return most_distinct(tried)
        # one source, or fewer moving pixels or candidates than sources
        coords, points = candidate_points(sal, z, motion=seen.flow is not None)
        k = min(num_sources, len(points))
        labels = kmeans_euclidean(points, k) if k > 1 else np.zeros(len(points), int)
        return _with_shares(engine, seen, heard, group_regions(coords, labels, k, sal.shape, video_size))[0]
    for k in range(MAX_SOURCES, 1, -1):
        tried = [_with_shares(engine, seen, heard, r) for r in groupings(moving, sal, z, k, video_size)]
        accepted = [(regions, sounds) for regions, sounds in tried if distinct_sources(sounds, motion, regions, heard.warped)]
        if accepted:
            return most_distinct(accepted)
    coords, _ = candidate_points(sal, z, motion=seen.flow is not None)
    return _with_shares(engine, seen, heard, group_regions(coords, np.zeros(len(coords), int), 1, sal.shape, video_size))[0]


def most_distinct(tried: list[tuple[list, np.ndarray]]) -> list:
    """Of groupings ``(regions, sounds)`` (what each region separates, ``(R, ...)``), the regions of
    the one whose groups sound least alike (the lowest largest cosine similarity between two of its
    groups' separated magnitudes); the first on a tie. With the count given, this is +1.2 / +1.1 dB
    (different / same kind) over the first grouping on the foreign duets, +1.0 / +0.5 on a second
    foreign draw (``weights/README.md``, session 26)."""
    return min(tried, key=lambda t: cosine_matrix(t[1].reshape(len(t[1]), -1)).max())[0]


def groupings(moving: MovingPixels | None, sal: np.ndarray, z: np.ndarray, k: int, video_size: tuple[int, int]):
    """The groupings into ``k`` non-empty groups that the count tries, in order: motion models, their
    ``moving`` pixels grouped by the rhythm of their motion (:func:`avsplit.inference.rhythm.rhythm_groupings`,
    one per seed); appearance models (``moving`` None), the candidate cells clustered on their look and position
    (k-means with :data:`POSITION_WEIGHT`, once). Yields lists of ``k``
    :class:`~avsplit.inference.regions.Region`."""
    if moving is not None:
        yield from rhythm_groupings(moving, k, sal.shape, video_size)
        return
    coords, points = candidate_points(sal, z, motion=False)
    if len(points) < k:
        return
    regions = group_regions(coords, kmeans_euclidean(points, k), k, sal.shape, video_size)
    if len(regions) == k:
        yield regions


def _with_shares(engine: SeparationEngine, seen: Seen, heard: Heard, regions: list) -> tuple[list, np.ndarray]:
    """``regions`` ordered left to right, each with its share of the separated energy as its
    confidence, and what each separates (:func:`group_sounds`, ``(R, M, Fl, T)``, in that order)."""
    order = sorted(range(len(regions)), key=lambda r: (regions[r].box[0] + regions[r].box[2]) / 2)
    regions = [regions[r] for r in order]
    sounds = group_sounds(engine, seen, heard, regions)
    shares = sounds.reshape(len(regions), -1).sum(1) / max(float(sounds.sum()), 1e-8)
    for region, share in zip(regions, shares):
        region.confidence = float(share)
    return regions, sounds
