"""Sources as regions of the picture: on the model's feature grid and in video pixels (``--grid``,
``--box``, or found by :mod:`avsplit.inference.discovery`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from avsplit.errors import ConfigError


@dataclass
class Region:
    """A source's region on the feature grid and in the video's pixel coordinates."""

    cells: np.ndarray  # bool (h, w)
    box: list[float]  # [x0, y0, x1, y1] in video pixels
    confidence: float = 0.0
    label: str = ""



def cells_to_box(cells: np.ndarray, frame_size: tuple[int, int], video_size: tuple[int, int]) -> list[float]:
    """Bounding box of the True cells of an ``(h, w)`` grid, in video pixels ``[x0, y0, x1, y1]``."""
    h, w = cells.shape
    ys, xs = np.nonzero(cells)
    if ys.size == 0:
        return [0.0, 0.0, float(video_size[0]), float(video_size[1])]
    sx, sy = video_size[0] / w, video_size[1] / h
    return [float(xs.min() * sx), float(ys.min() * sy), float((xs.max() + 1) * sx), float((ys.max() + 1) * sy)]


def grid_regions(rows: int, cols: int, grid_shape: tuple[int, int], frame_size, video_size) -> list[Region]:
    h, w = grid_shape
    regions = []
    for i in range(rows):
        for j in range(cols):
            cells = np.zeros((h, w), bool)
            y0, y1 = round(i * h / rows), max(round((i + 1) * h / rows), round(i * h / rows) + 1)
            x0, x1 = round(j * w / cols), max(round((j + 1) * w / cols), round(j * w / cols) + 1)
            cells[y0:y1, x0:x1] = True
            box = [j * video_size[0] / cols, i * video_size[1] / rows, (j + 1) * video_size[0] / cols, (i + 1) * video_size[1] / rows]
            regions.append(Region(cells, box, label=f"cell {i + 1},{j + 1}"))
    return regions


def box_regions(boxes: Sequence[Sequence[float]], grid_shape, video_size) -> list[Region]:
    h, w = grid_shape
    regions = []
    for box in boxes:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ConfigError(f"box {list(box)} must be x0,y0,x1,y1 with x0 < x1 and y0 < y1")
        cx = (np.arange(w) + 0.5) * video_size[0] / w
        cy = (np.arange(h) + 0.5) * video_size[1] / h
        cells = (cy[:, None] >= y0) & (cy[:, None] <= y1) & (cx[None] >= x0) & (cx[None] <= x1)
        if not cells.any():  # a box smaller than a cell: take the cell under its centre
            cells[min(h - 1, int((y0 + y1) / 2 / video_size[1] * h)), min(w - 1, int((x0 + x1) / 2 / video_size[0] * w))] = True
        regions.append(Region(cells, [float(v) for v in box], label="box"))
    return regions
