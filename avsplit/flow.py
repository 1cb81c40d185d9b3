"""Dense optical flow between consecutive frames, and motion measures built on it.

Backend ``dis``: OpenCV's DIS optical flow (Kroeger et al., "Fast optical flow using dense inverse
search", 2016) on grey frames; no weights, CPU, a few milliseconds per frame at the small sizes
used here. Flow is a float32 ``(H, W, 2)`` array of ``(dx, dy)`` pixel displacements that take a
pixel of the earlier frame to its place in the later one.

Typical use (streaming; one frame held at a time)::

    for t, flow in iter_flow("clip.mp4", fps=12, short_side=128):
        energy = region_motion(flow_magnitude(flow), (16, 21))

Used by ``localize --method onsets`` (:mod:`avsplit.onsets`) and meant to be reused by the
motion network's preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from avsplit.errors import ConfigError

#: DIS presets by name (speed versus accuracy).
DIS_PRESETS = ("ultrafast", "fast", "medium")
BACKENDS = ("dis",)


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("optical flow needs OpenCV", fix="pip install opencv-python-headless") from exc
    return cv2


def to_grey(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` (or an already grey ``(H, W)``) -> grey uint8 ``(H, W)``."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
    return _cv2().cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), _cv2().COLOR_RGB2GRAY)


class DISFlow:
    """Dense flow with OpenCV's DIS: ``flow = DISFlow()(prev, next)``, ``(H, W, 2)`` float32.

    Frames may be RGB or grey uint8 of the same size. One instance keeps OpenCV's state, so use
    one per thread.
    """

    def __init__(self, preset: str = "medium"):
        if preset not in DIS_PRESETS:
            raise ConfigError(f"unknown DIS preset {preset!r}", fix=f"use one of {', '.join(DIS_PRESETS)}")
        cv2 = _cv2()
        ids = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(ids[preset])

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        a, b = to_grey(prev), to_grey(nxt)
        if a.shape != b.shape:
            raise ValueError(f"frames differ in size: {a.shape} vs {b.shape}")
        flow = self._dis.calc(a, b, None)
        return np.asarray(flow, dtype=np.float32)


def make_flow(backend: str = "dis", **options) -> DISFlow:
    """A flow function ``(prev, next) -> (H, W, 2)`` for ``backend`` (``dis``)."""
    if backend == "dis":
        return DISFlow(**options)
    raise ConfigError(f"unknown optical-flow backend {backend!r}", fix=f"use one of {', '.join(BACKENDS)}")


def iter_flow(
    path: str | Path,
    fps: float | None = None,
    *,
    short_side: int | None = 128,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    backend: str = "dis",
    preset: str = "medium",
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(t, flow)`` for a video: the flow from the frame before ``t`` to the frame at ``t``.

    Frames come from :func:`avsplit.media.iter_frames` (at ``fps``, or every frame when None;
    resized to ``short_side``/``size``). The first frame yields a zero flow, so there is one flow
    per frame. Only two frames are held at a time.
    """
    from avsplit import media

    flow_fn = make_flow(backend, preset=preset)
    prev = None
    for t, frame in media.iter_frames(path, fps=fps, start=start, duration=duration, short_side=short_side, size=size):
        grey = to_grey(frame)
        if prev is None:
            flow = np.zeros(grey.shape + (2,), np.float32)
        else:
            flow = flow_fn(prev, grey)
        prev = grey
        yield t, flow


def flow_magnitude(flow: np.ndarray, compensate: bool = True) -> np.ndarray:
    """Per-pixel speed ``(H, W)`` (pixels per frame) of a flow ``(H, W, 2)``.

    With ``compensate`` the median flow vector (camera pan) is removed first, so only things that
    move relative to most of the picture count.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if compensate:
        flow = flow - np.median(flow.reshape(-1, 2), axis=0)
    return np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1]))


@dataclass(frozen=True)
class Grid:
    """A grid of ``rows x cols`` regions over an ``height x width`` picture (edges by rounding)."""

    rows: int
    cols: int
    height: int
    width: int

    @classmethod
    def by_cell(cls, height: int, width: int, cell: int) -> "Grid":
        """Square-ish cells of about ``cell`` pixels."""
        return cls(max(1, int(round(height / cell))), max(1, int(round(width / cell))), height, width)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        ys = np.round(np.linspace(0, self.height, self.rows + 1)).astype(int)
        xs = np.round(np.linspace(0, self.width, self.cols + 1)).astype(int)
        return ys, xs


def region_motion(values: np.ndarray, grid: Grid | tuple[int, int]) -> np.ndarray:
    """Mean of a per-pixel measure ``(H, W)`` over each cell of ``grid``: ``(rows, cols)``.

    ``grid`` is a :class:`Grid` or ``(rows, cols)`` spread evenly over the picture.
    """
    values = np.asarray(values, dtype=np.float32)
    h, w = values.shape
    if not isinstance(grid, Grid):
        grid = Grid(int(grid[0]), int(grid[1]), h, w)
    if (grid.height, grid.width) != (h, w):
        raise ValueError(f"grid is for {grid.width}x{grid.height}, values are {w}x{h}")
    ys, xs = grid.edges()
    # sums over cells through an integral image: exact for any cell edges
    integral = np.zeros((h + 1, w + 1), np.float64)
    integral[1:, 1:] = values.cumsum(0).cumsum(1)
    sums = integral[ys[1:]][:, xs[1:]] - integral[ys[:-1]][:, xs[1:]] - integral[ys[1:]][:, xs[:-1]] + integral[ys[:-1]][:, xs[:-1]]
    areas = np.outer(np.diff(ys), np.diff(xs)).clip(min=1)
    return (sums / areas).astype(np.float32)


def warp_backward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` ``(H, W[, C])`` at ``x + flow(x)`` (bilinear, edges replicated): with the
    flow from frame A to frame B and ``image`` = B, the result lines B up with A."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


__all__ = ["DISFlow", "Grid", "make_flow", "iter_flow", "flow_magnitude", "region_motion", "to_grey", "warp_backward"]
