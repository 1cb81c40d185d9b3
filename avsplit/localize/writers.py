"""Writing maps: raw maps to ``.npz`` (:class:`MapsWriter`) and heatmap frames over the video
(:class:`OverlayRenderer`, kept in step with the frames by :class:`_MapClock`)."""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from avsplit.dsp.maps import upsample
from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, ensure_dir
from avsplit.localize.colours import SOURCE_COLOURS, colormap_lut
from avsplit.localize.maps import MapFrame


# ------------------------------------------------------------------------------ writers


class MapsWriter:
    """Streams maps into an ``.npz`` (see the module doc), atomically.

    Maps are appended to temporary raw files and copied into the archive by :meth:`close`, so
    memory does not grow with the video's length.
    """

    def __init__(self, path: Path, grid: tuple[int, int], frame_size: tuple[int, int], sources: int = 0,
                 extra: dict | None = None):
        self.path = Path(path)
        self.grid = tuple(int(v) for v in grid)
        self.frame_size = frame_size  # (H, W)
        self.extra = extra or {}
        self.count = 0
        self.times: list[float] = []
        try:
            ensure_dir(self.path.parent)
            self._dir = tempfile.TemporaryDirectory(prefix=".avsplit-maps-", dir=self.path.parent)
        except OSError as exc:
            raise OutputError(f"cannot write the maps ({exc.strerror or exc})", self.path,
                              "choose a writable output folder") from exc
        self._files = [open(Path(self._dir.name) / f"{i}.raw", "wb") for i in range(1 + sources)]

    def write(self, frame: MapFrame) -> None:
        self._files[0].write(np.ascontiguousarray(frame.values, dtype="<f4").tobytes())
        if len(self._files) > 1:
            for f, v in zip(self._files[1:], frame.sources):
                f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
        self.times.append(float(frame.time))
        self.count += 1

    def _copy(self, zf: zipfile.ZipFile, name: str, raw: Path, shape: tuple[int, ...]) -> None:
        with zf.open(name, "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
            with open(raw, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

    def close(self) -> Path:
        for f in self._files:
            f.close()
        t, (h, w) = self.count, self.grid
        try:
            with atomic_path(self.path) as tmp:
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                    self._copy(zf, "maps.npy", Path(self._dir.name) / "0.raw", (t, h, w))
                    arrays = {"times": np.asarray(self.times, np.float64),
                              "frame_size": np.asarray(self.frame_size, np.int64), **self.extra}
                    k = len(self._files) - 1
                    if k:
                        # (K, T, h, w): one source after the other
                        with zf.open("source_maps.npy", "w", force_zip64=True) as out:
                            np.lib.format.write_array_header_1_0(
                                out, {"descr": "<f4", "fortran_order": False, "shape": (k, t, h, w)})
                            for i in range(1, k + 1):
                                with open(Path(self._dir.name) / f"{i}.raw", "rb") as src:
                                    while chunk := src.read(1 << 20):
                                        out.write(chunk)
                    for name, arr in arrays.items():
                        with zf.open(f"{name}.npy", "w") as out:
                            np.lib.format.write_array(out, np.asarray(arr), allow_pickle=False)
        except OSError as exc:
            raise OutputError(f"cannot write the maps ({exc.strerror or exc})", self.path,
                              "choose a writable output folder or free disk space") from exc
        finally:
            self._dir.cleanup()
        return self.path

    def abort(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._dir.cleanup()


class _MapClock:
    """The map at any time of a stream of :class:`MapFrame` s in time order (linear interpolation
    between neighbours, held at the ends); pulls frames lazily and hands each to ``on_frame``."""

    def __init__(self, frames: Iterator[MapFrame], on_frame=None):
        self._it = iter(frames)
        self._on_frame = on_frame
        self._prev: MapFrame | None = None
        self._next: MapFrame | None = self._pull()

    def _pull(self) -> MapFrame | None:
        frame = next(self._it, None)
        if frame is not None and self._on_frame is not None:
            self._on_frame(frame)
        return frame

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        while self._next is not None and self._next.time < t:
            self._prev, self._next = self._next, self._pull()
        a, b = self._prev, self._next
        if a is None and b is None:
            raise AvsplitError("no sound maps were produced")
        if b is None:
            return a.values, a.sources
        if a is None or t <= a.time or b.time <= a.time:
            return (b if a is None else a).values, (b if a is None else a).sources
        x = (t - a.time) / (b.time - a.time)
        vals = (1 - x) * a.values + x * b.values
        srcs = None if a.sources is None else (1 - x) * a.sources + x * b.sources
        return vals, srcs

    def drain(self) -> None:
        while self._next is not None:
            self._prev, self._next = self._next, self._pull()


class OverlayRenderer:
    """Blends maps over frames: ``(1 - alpha) * frame + alpha * colour(map)``.

    Map values are shown relative to a slowly decaying peak (half-life ``memory`` seconds), so a
    quiet video still shows where its sound comes from while silence stays dark. With source maps,
    each source has its own colour (:data:`SOURCE_COLOURS`) scaled by its map.
    """

    def __init__(self, colormap: str = "inferno", alpha: float = 0.5, memory: float = 10.0, min_peak: float = 0.05):
        if not 0 <= alpha <= 1:
            raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
        self.lut = colormap_lut(colormap)
        self.alpha = float(alpha)
        self.memory = memory
        self.min_peak = min_peak
        self._peak = 0.0
        self._last_t: float | None = None

    def _gain(self, t: float, peak_now: float) -> float:
        if self._last_t is not None and self.memory > 0:
            self._peak *= 0.5 ** (max(0.0, t - self._last_t) / self.memory)
        self._last_t = t
        self._peak = max(self._peak, peak_now)
        return 1.0 / max(self._peak, self.min_peak)

    def render(self, t: float, frame: np.ndarray, values: np.ndarray, sources: np.ndarray | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        gain = self._gain(t, float(values.max()) if values.size else 0.0)
        base = frame.astype(np.float32) * (1.0 - self.alpha)
        if sources is not None and len(sources):
            up = np.clip(upsample(sources, w, h) * gain, 0, 1)  # (K, H, W)
            colours = SOURCE_COLOURS[np.arange(len(up)) % len(SOURCE_COLOURS)]
            tint = np.einsum("khw,kc->hwc", up, colours)
            out = base + self.alpha * np.minimum(tint, 255.0)
        else:
            up = np.clip(upsample(values, w, h) * gain, 0, 1)
            out = base + self.alpha * self.lut[np.clip(up * 255 + 0.5, 0, 255).astype(np.uint8)].astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
