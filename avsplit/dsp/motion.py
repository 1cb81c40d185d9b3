"""Motion measures on a dense optical flow (:mod:`avsplit.dsp.flow`): speed per pixel with the camera's
motion removed, and its mean over the cells of a grid.

Typical use::

    for t, flow in iter_flow("clip.mp4", fps=12, short_side=128):
        energy = region_motion(flow_magnitude(flow), (16, 21))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "flow_magnitude", "region_motion"]


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
