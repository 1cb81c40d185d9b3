"""One cache entry on disk: a folder of raw arrays and ``meta.json`` (read: :class:`CachedVideo`; written: :class:`EntryWriter`).

The layout is described in :mod:`avsplit.data.cache`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from avsplit.dsp.chunking import centred_times
from avsplit.errors import AvsplitError


#: Bump when the content or layout of an entry changes: old entries are then ignored.
CACHE_FORMAT = 1

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")



class CacheMissError(AvsplitError):
    """The video has no complete entry in the preprocessing cache (not built, or changed since)."""


class CacheWriteError(Exception):
    """Writing into the cache folder failed (disk full, permissions): fatal for the whole build."""


# ------------------------------------------------------------------------------ cached video


class CachedVideo:
    """One preprocessed video: memory-mapped frames, frame times and audio, plus its metadata.

    Arrays are opened lazily and are read-only. Pickling keeps only the folder and metadata
    (the arrays are mapped again on first use), so instances are cheap to send to data-loader
    worker processes.
    """

    def __init__(self, folder: str | Path, meta: dict[str, Any] | None = None):
        self.folder = Path(folder)
        if meta is None:
            meta = _read_meta(self.folder)
        self.meta = meta
        self._arrays: dict[str, np.ndarray] = {}

    # ---- pickling: never send the mapped data itself
    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.folder = state["folder"]
        self.meta = state["meta"]
        self._arrays = {}

    def __repr__(self) -> str:
        return (
            f"CachedVideo(id={self.id!r}, category={self.category!r}, frames={self.num_frames}, "
            f"samples={self.num_samples}, duration={self.duration:.2f}s)"
        )

    # ---- metadata
    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def category(self) -> str | None:
        return self.meta["category"]

    @property
    def source(self) -> Path:
        """The video file (or, for a Sound-of-Pixels item, its audio file)."""
        return Path(self.meta["source"])

    @property
    def width(self) -> int:
        """Original picture width (pixels)."""
        return int(self.meta["original"]["width"])

    @property
    def height(self) -> int:
        """Original picture height (pixels)."""
        return int(self.meta["original"]["height"])

    @property
    def fps(self) -> float | None:
        """Original frame rate."""
        return self.meta["original"]["fps"]

    @property
    def sample_rate(self) -> int:
        """Rate of :attr:`audio` (the settings' rate)."""
        return int(self.meta["sample_rate"])

    @property
    def duration(self) -> float:
        """Seconds covered by both the frames and the audio."""
        return float(self.meta["duration"])

    @property
    def num_frames(self) -> int:
        return int(self.meta["arrays"]["frames"]["shape"][0])

    @property
    def num_samples(self) -> int:
        return int(self.meta["arrays"]["audio"]["shape"][0])

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the cached frames."""
        shape = self.meta["arrays"]["frames"]["shape"]
        return int(shape[2]), int(shape[1])

    # ---- arrays
    @property
    def frames(self) -> np.ndarray:
        """uint8 ``(T, H, W, 3)`` RGB frames at :attr:`frame_rate`, memory-mapped."""
        return self.array("frames")

    @property
    def frame_times(self) -> np.ndarray:
        """float32 ``(T,)`` time of each frame in seconds."""
        return self.array("frame_times")

    @property
    def audio(self) -> np.ndarray:
        """float32 ``(N,)`` mono audio at :attr:`sample_rate`, memory-mapped."""
        return self.array("audio")

    @property
    def array_names(self) -> list[str]:
        return sorted(self.meta["arrays"])

    def array(self, name: str) -> np.ndarray:
        """A named array of the entry (``frames``, ``frame_times``, ``audio`` or an extra's), read-only."""
        arr = self._arrays.get(name)
        if arr is None:
            try:
                spec = self.meta["arrays"][name]
            except KeyError:
                raise KeyError(f"cache entry {self.folder} has no array {name!r} (has {self.array_names})") from None
            arr = _map_array(self.folder / spec["file"], spec["dtype"], tuple(spec["shape"]))
            self._arrays[name] = arr
        return arr

    # ---- helpers for samplers
    def audio_window(self, start_sample: int, length: int) -> np.ndarray:
        """A float32 copy of ``length`` samples from ``start_sample``.

        Parts before the start or past the end of the audio are zeros (the file is silent
        there: it has no sound), so a too-short file still gives a full window.
        """
        length = int(length)
        start_sample = int(start_sample)
        out = np.zeros(max(0, length), np.float32)
        audio = self.audio
        s0 = max(0, start_sample)
        s1 = min(audio.shape[0], start_sample + length)
        if s1 > s0:
            out[s0 - start_sample : s1 - start_sample] = audio[s0:s1]
        return out

    def frames_in(self, start_s: float, end_s: float, n: int) -> np.ndarray:
        """Indices (int64 ``(n,)``) of ``n`` frames evenly placed inside ``[start_s, end_s)``.

        Frame i is the one on screen at ``start_s + (i + 0.5) * (end_s - start_s) / n``; times
        before the first or after the last frame give the first or last frame.
        """
        n = int(n)
        if n <= 0:
            return np.zeros(0, np.int64)
        start_s = float(start_s)
        span = float(end_s) - start_s
        if span <= 0:
            times = np.full(n, start_s)
        else:
            times = centred_times(start_s, span, n)
        ft = np.asarray(self.frame_times, dtype=np.float64)
        idx = np.searchsorted(ft, times + 1e-6, side="right") - 1
        return np.clip(idx, 0, max(0, ft.shape[0] - 1)).astype(np.int64)

def _map_array(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if math.prod(shape) == 0:
        arr = np.zeros(shape, dtype=np.dtype(dtype))
        arr.flags.writeable = False
        return arr
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape)


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheMissError(f"cache entry is unreadable ({exc})", folder, "delete it and preprocess again") from None
    if meta.get("format") != CACHE_FORMAT:
        raise CacheMissError("cache entry has another format version", folder, "preprocess again")
    return meta


# ------------------------------------------------------------------------------ entry writing


class _ArrayAppender:
    """Append items of one array to its raw file; the shape is known when it is closed."""

    def __init__(self, writer: "EntryWriter", name: str, dtype: np.dtype, item_shape: tuple[int, ...] | None):
        self.writer = writer
        self.name = name
        self.dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        self.item_shape = item_shape
        self.count = 0
        self._file = writer._open(name)

    def append(self, item: np.ndarray) -> None:
        """Append one item (an array of the item shape)."""
        item = np.asarray(item)
        self.extend(item[None])

    def extend(self, items: np.ndarray) -> None:
        """Append a batch of items (first axis = items)."""
        items = np.ascontiguousarray(items, dtype=self.dtype)
        if self.item_shape is None:
            self.item_shape = tuple(items.shape[1:])
        elif tuple(items.shape[1:]) != self.item_shape:
            raise ValueError(f"array {self.name!r}: item shape {items.shape[1:]} != {self.item_shape}")
        try:
            self._file.write(items.tobytes())
        except OSError as exc:
            raise CacheWriteError(f"cannot write {self.writer.folder} ({exc.strerror or exc})") from exc
        self.count += items.shape[0]

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise CacheWriteError(f"cannot write {self.writer.folder} ({exc.strerror or exc})") from exc
        shape = (self.count, *(self.item_shape or ()))
        self.writer._register(self.name, self.dtype, shape)


class EntryWriter:
    """Writes the arrays of one cache entry into its (temporary) folder.

    Extras (:class:`CacheExtra`) use :meth:`write_array` or :meth:`stream_array` to add
    named arrays, and may put JSON-ready values into :attr:`meta` (``meta["extra"][name]``).
    """

    def __init__(self, folder: Path, meta: dict[str, Any]):
        self.folder = folder
        self.meta = meta
        self.meta.setdefault("arrays", {})

    def _check_name(self, name: str) -> None:
        if not _NAME_RE.match(name) or name == "meta":
            raise ValueError(f"invalid cache array name {name!r}")
        if name in self.meta["arrays"]:
            raise ValueError(f"cache array {name!r} written twice")

    def _open(self, name: str):
        self._check_name(name)
        try:
            return open(self.folder / f"{name}.bin", "wb", buffering=1 << 20)
        except OSError as exc:
            raise CacheWriteError(f"cannot write {self.folder} ({exc.strerror or exc})") from exc

    def _register(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.meta["arrays"][name] = {"file": f"{name}.bin", "dtype": np.dtype(dtype).str, "shape": [int(s) for s in shape]}

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Store a whole array under ``name``."""
        array = np.asarray(array)
        appender = _ArrayAppender(self, name, array.dtype, tuple(array.shape[1:]) if array.ndim else ())
        if array.ndim == 0:
            appender.append(array)
            appender.close()
            self.meta["arrays"][name]["shape"] = []
            return
        appender.extend(array)
        appender.close()

    @contextlib.contextmanager
    def stream_array(self, name: str, dtype, item_shape: tuple[int, ...] | None = None) -> Iterator[_ArrayAppender]:
        """Append items one by one (``.append(item)`` / ``.extend(batch)``): nothing is held in memory."""
        appender = _ArrayAppender(self, name, np.dtype(dtype), item_shape)
        try:
            yield appender
        except BaseException:
            with contextlib.suppress(Exception):
                appender._file.close()
            raise
        appender.close()

    def view(self) -> CachedVideo:
        """The entry as written so far (for extras computed from the frames or audio)."""
        return CachedVideo(self.folder, self.meta)

    def finish(self) -> None:
        data = json.dumps(self.meta, indent=1, sort_keys=True)
        try:
            (self.folder / "meta.json").write_text(data, encoding="utf-8")
        except OSError as exc:
            raise CacheWriteError(f"cannot write {self.folder} ({exc.strerror or exc})") from exc


class CacheExtra(Protocol):
    """Something computed once per video after its frames and audio, stored beside them.

    ``name`` and ``version`` go into the cache key (change ``version`` when the computation
    changes). ``compute`` runs in the worker process; it reads ``video`` (the frames and audio
    just written) and writes named arrays with ``entry.write_array`` / ``entry.stream_array``.
    It may raise :class:`avsplit.errors.MediaError` to reject the video. Instances must be
    picklable (module-level classes).
    """

    name: str
    version: str

    def compute(self, video: CachedVideo, entry: EntryWriter) -> None: ...
