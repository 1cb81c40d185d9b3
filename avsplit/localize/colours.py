"""Colour maps for heatmaps: lookup tables of named ramps and the colours of sources."""

from __future__ import annotations

import numpy as np

from avsplit.errors import ConfigError



_COLORMAP_STOPS: dict[str, list[list[int]]] = {
    "inferno": [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                [250, 193, 39], [252, 255, 164]],
    "magma": [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100],
              [251, 135, 97], [254, 194, 135], [252, 253, 191]],
    "viridis": [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
                [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]],
    "jet": [[0, 0, 128], [0, 0, 255], [0, 128, 255], [0, 255, 255], [128, 255, 128], [255, 255, 0],
            [255, 128, 0], [255, 0, 0], [128, 0, 0]],
    "hot": [[0, 0, 0], [128, 0, 0], [255, 0, 0], [255, 128, 0], [255, 255, 0], [255, 255, 128], [255, 255, 255]],
}
COLORMAPS = tuple(_COLORMAP_STOPS)

#: Colours of sources 1, 2, ... with ``--per-source`` (distinct hues, bright on dark).
SOURCE_COLOURS = np.array([[255, 60, 40], [40, 200, 255], [255, 220, 40], [200, 80, 255], [60, 255, 120],
                           [255, 120, 200], [255, 150, 40], [120, 140, 255]], np.float32)


def colormap_lut(name: str) -> np.ndarray:
    """A 256-entry RGB uint8 lookup table ``(256, 3)`` for a named colour map."""
    if name not in _COLORMAP_STOPS:
        raise ConfigError(f"unknown colour map {name!r}", fix=f"use one of {', '.join(COLORMAPS)}")
    stops = np.array(_COLORMAP_STOPS[name], np.float64)
    x = np.linspace(0, len(stops) - 1, 256)
    lo = np.floor(x).astype(int).clip(0, len(stops) - 2)
    frac = (x - lo)[:, None]
    return np.round(stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(np.uint8)


def apply_colormap(values: np.ndarray, name: str | np.ndarray = "inferno") -> np.ndarray:
    """Values in [0, 1] ``(H, W)`` -> RGB uint8 ``(H, W, 3)``."""
    lut = colormap_lut(name) if isinstance(name, str) else name
    idx = np.clip(np.nan_to_num(values) * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut[idx]
