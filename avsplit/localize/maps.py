"""Streams of sound maps in time (:class:`MapFrame`), the ``onsets`` method's stream, and collecting a stream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from avsplit import io as media
from avsplit.localize.onsets import OnsetSettings, analysis_fps, grid_shape, onset_maps


METHODS = ("model", "onsets")


@dataclass
class MapFrame:
    """One map in time: ``values`` ``(h, w)`` and, with sources, ``sources`` ``(K, h, w)``."""

    time: float
    values: np.ndarray
    sources: np.ndarray | None = None




class OnsetMaps:
    """Streams :class:`MapFrame` s of the ``onsets`` method (:func:`avsplit.localize.onsets.onset_maps`)."""

    def __init__(self, path: str | Path, settings=None, info: media.MediaInfo | None = None):
        self.path = Path(path)
        self.settings = settings or OnsetSettings()
        self.info = (info or media.probe(self.path)).require_video().require_audio()
        self.grid = grid_shape(self.path, self.settings, self.info)
        self.regions = None
        self.duration = float(self.info.duration)
        fps = analysis_fps(self.info, self.settings)
        self.count = max(1, int(math.ceil(self.duration * min(self.settings.map_rate, fps))))

    def __iter__(self) -> Iterator[MapFrame]:
        for t, m in onset_maps(self.path, self.settings, self.info):
            yield MapFrame(float(t), m)


def compute_maps(source) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Collect a map stream: ``(times (T,), maps (T, h, w), source maps (K, T, h, w) or None)``."""
    times, maps, sources = [], [], []
    for f in source:
        times.append(f.time)
        maps.append(f.values)
        if f.sources is not None:
            sources.append(f.sources)
    grid = tuple(source.grid)
    maps_a = np.stack(maps).astype(np.float32) if maps else np.zeros((0,) + grid, np.float32)
    src = np.stack(sources, axis=1).astype(np.float32) if sources else None
    return np.asarray(times, np.float64), maps_a, src
