"""The preprocessing cache: each training video decoded once, to memory-mappable arrays.

Layout under the cache root::

    ROOT/
      CACHEDIR.TAG                  marks the folder as a cache for backup tools
      entries/<k0k1>/<key>/         one folder per video, renamed into place when complete
        meta.json                   source, settings, durations, and the shape/dtype of each array
        frames.bin                  uint8 (T, H, W, 3) RGB at settings.video.fps, short side resized
        frame_times.bin             float32 (T,) seconds
        audio.bin                   float32 (N,) mono at settings.audio.sample_rate
        <name>.bin                  further arrays written by extras (e.g. optical flow)
      failed/<key>.json             why a file could not be used (not retried until it changes)
      tmp/<key>@<host>@<pid>@...    entries being written; left-overs of dead processes are removed

``<key>`` is the sha256 of the absolute source path(s), their size and mtime (ns), the settings
that change content (:meth:`PreprocessSettings.key_dict`), the extras and
:data:`CACHE_FORMAT`: touching or replacing a file, or changing the settings, gives a new entry.
Arrays are raw little-endian bytes (``numpy.memmap``-able) whose shape and dtype are in
``meta.json``; frames are appended to ``frames.bin`` while decoding, so a long video is never
held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import socket
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from avsplit import __version__
from avsplit import io as media
from avsplit.config import PreprocessSettings
from avsplit.console import error_line, log, make_progress
from avsplit.errors import (
    AvsplitError,
    EmptyMediaError,
    MediaError,
    OutputError,
    UnreadableMediaError,
)
from avsplit.files import atomic_path, ensure_dir
from avsplit.data.scan import VideoItem, sop_frame_name

__all__ = [
    "CACHE_FORMAT",
    "CacheExtra",
    "CacheMissError",
    "CacheReport",
    "CachedVideo",
    "EntryWriter",
    "PreprocessCache",
]

#: Bump when the content or layout of an entry changes: old entries are then ignored.
CACHE_FORMAT = 1

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FIX_UNREADABLE = "check that it is a complete video file FFmpeg can play (re-download or re-export it)"


class CacheMissError(AvsplitError):
    """The video has no complete entry in the preprocessing cache (not built, or changed since)."""


class _CacheWriteError(Exception):
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
    def frame_rate(self) -> float:
        """Rate of :attr:`frames` (the settings' rate)."""
        return float(self.meta["frame_rate"])

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

    def has_array(self, name: str) -> bool:
        return name in self.meta["arrays"]

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
            times = start_s + (np.arange(n) + 0.5) * (span / n)
        ft = np.asarray(self.frame_times, dtype=np.float64)
        idx = np.searchsorted(ft, times + 1e-6, side="right") - 1
        return np.clip(idx, 0, max(0, ft.shape[0] - 1)).astype(np.int64)

    def frame_index_at(self, t: float) -> int:
        """Index of the frame on screen at ``t`` seconds."""
        return int(self.frames_in(t, t, 1)[0])


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
            raise _CacheWriteError(f"cannot write {self.writer.folder} ({exc.strerror or exc})") from exc
        self.count += items.shape[0]

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise _CacheWriteError(f"cannot write {self.writer.folder} ({exc.strerror or exc})") from exc
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
            raise _CacheWriteError(f"cannot write {self.folder} ({exc.strerror or exc})") from exc

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
            raise _CacheWriteError(f"cannot write {self.folder} ({exc.strerror or exc})") from exc


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


# ------------------------------------------------------------------------------ decoding


def _stat(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _key_payload(item: VideoItem) -> dict[str, Any]:
    """The source-side part of the cache key (raises MediaError if a source is missing)."""
    path = Path(item.path)
    try:
        source = [str(path.resolve()), *_stat(path)]
    except FileNotFoundError:
        fix = "check AUDIO_PATH in the index CSV" if item.is_sop else "check the path"
        raise MediaError("no such file", path, fix) from None
    except OSError as exc:
        raise MediaError(f"cannot read ({exc.strerror or exc})", path, "check the file's permissions") from None
    payload: dict[str, Any] = {"kind": "sop" if item.is_sop else "video", "source": source}
    if item.is_sop:
        folder = Path(item.frames_dir)  # type: ignore[arg-type]
        if not folder.is_dir():
            raise MediaError("frame folder not found", folder, "check FRAMES_PATH in the index CSV")
        ends = []
        for i in (1, int(item.num_frames or 1)):
            f = folder / sop_frame_name(i)
            ends.append(_stat(f) if f.exists() else None)
        payload["frames"] = [str(folder.resolve()), folder.stat().st_mtime_ns, ends]
        payload["num_frames"] = int(item.num_frames or 0)
        payload["frames_fps"] = float(item.frames_fps or 0)
    return payload


def _decode_video(item: VideoItem, settings: PreprocessSettings, writer: EntryWriter) -> dict[str, Any]:
    path = Path(item.path)
    info = media.probe(path)
    info.require_video()
    info.require_audio()
    sr = settings.audio.sample_rate
    audio = media.read_audio(path, sr, mono=True)
    _check_audio(audio, path)
    writer.write_array("audio", audio)
    del audio
    times = _stream_frames(
        writer, media.iter_frames(path, fps=settings.video.fps, short_side=settings.video.short_side), path
    )
    writer.write_array("frame_times", np.asarray(times, np.float32))
    return {
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "duration": info.duration,
        "variable_frame_rate": info.variable_frame_rate,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "audio_rate": info.audio_rate,
        "audio_channels": info.audio_channels,
    }


def _stream_frames(writer: EntryWriter, frames: Iterable[tuple[float, np.ndarray]], path: Path) -> list[float]:
    times: list[float] = []
    with writer.stream_array("frames", np.uint8) as out:
        for t, rgb in frames:
            if out.item_shape is not None and rgb.shape != out.item_shape:
                raise UnreadableMediaError(
                    f"picture size changes mid-stream ({out.item_shape[1]}x{out.item_shape[0]} -> "
                    f"{rgb.shape[1]}x{rgb.shape[0]})",
                    path,
                    "re-export it at one size",
                )
            out.append(rgb)
            times.append(float(t))
    if not times:
        raise EmptyMediaError("video stream has no decodable frames", path, _FIX_UNREADABLE)
    return times


def _check_audio(audio: np.ndarray, path: Path) -> None:
    if audio.size == 0:
        raise EmptyMediaError("audio stream has no decodable samples", path, _FIX_UNREADABLE)
    if not np.all(np.isfinite(audio)):
        raise UnreadableMediaError("audio decodes to invalid (NaN/inf) samples", path, _FIX_UNREADABLE)


def _decode_sop(item: VideoItem, settings: PreprocessSettings, writer: EntryWriter) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    path = Path(item.path)
    folder = Path(item.frames_dir)  # type: ignore[arg-type]
    n = int(item.num_frames or 0)
    src_fps = float(item.frames_fps or 8.0)
    sr = settings.audio.sample_rate
    audio = media.read_audio(path, sr, mono=True)
    _check_audio(audio, path)
    writer.write_array("audio", audio)
    del audio

    fps = float(settings.video.fps)
    count = max(1, int(math.ceil(n * fps / src_fps - 1e-9)))
    size: list[int] = []  # original (w, h)
    out_size: tuple[int, int] | None = None

    def load(index: int) -> np.ndarray:
        nonlocal out_size
        name = sop_frame_name(index + 1)
        try:
            with Image.open(folder / name) as im:
                im = im.convert("RGB")
                if out_size is None:
                    size.extend(im.size)
                    out_size = media.scaled_size(im.size[0], im.size[1], settings.video.short_side)
                if im.size != out_size:
                    im = im.resize(out_size, Image.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
        except FileNotFoundError:
            raise MediaError(
                f"frame {name} is missing (NUM_FRAMES is {n})", folder, "re-extract the frames or fix NUM_FRAMES in the index CSV"
            ) from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableMediaError(f"frame {name} cannot be read ({exc})", folder, "re-extract the frames") from None

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        last_index, last = -1, None
        for j in range(count):
            t = j / fps
            index = min(n - 1, int(math.floor(t * src_fps + 1e-6)))
            if index != last_index:
                last, last_index = load(index), index
            yield t, last  # type: ignore[misc]

    times = _stream_frames(writer, frames(), folder)
    writer.write_array("frame_times", np.asarray(times, np.float32))
    return {
        "width": size[0],
        "height": size[1],
        "fps": src_fps,
        "duration": n / src_fps,
        "variable_frame_rate": False,
        "video_codec": "jpeg",
        "audio_codec": None,
        "audio_rate": None,
        "audio_channels": None,
    }


@dataclass(frozen=True)
class _Task:
    item: VideoItem
    key: str
    root: Path
    settings: PreprocessSettings
    extras: tuple = ()


def _reason(exc: BaseException, item: VideoItem) -> str:
    """The one-line reason of a per-file failure, without the item's own path in front."""
    text = " ".join(str(exc).split())
    if isinstance(exc, AvsplitError) and exc.path is not None and Path(exc.path) == Path(item.path):
        prefix = f"{exc.path}: "
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _tmp_prefix(key: str) -> str:
    return f"{key[:16]}@{socket.gethostname().replace('@', '_')}@{os.getpid()}@"


def _build_entry(task: _Task) -> tuple[str, str]:
    """Decode one video into its entry. Returns ``("ok", "")``, ``("failed", reason)`` or
    ``("fatal", message)``. Runs in a worker process (or in-process for ``jobs=1``)."""
    item, key, root = task.item, task.key, task.root
    final = _entry_dir(root, key)
    if (final / "meta.json").exists():
        return "ok", ""
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(key), dir=root / "tmp"))
        meta: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "key": key,
            "kind": "sop" if item.is_sop else "video",
            "id": item.id or Path(item.path).stem,
            "category": item.category,
            "source": str(Path(item.path).resolve()),
            "frames_dir": str(Path(item.frames_dir).resolve()) if item.frames_dir else None,
            "settings": task.settings.key_dict(),
            "sample_rate": task.settings.audio.sample_rate,
            "frame_rate": float(task.settings.video.fps),
            "extras": [[e.name, str(e.version)] for e in task.extras],
            "extra": {},
            "avsplit": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "arrays": {},
        }
        writer = EntryWriter(tmp, meta)
        decode = _decode_sop if item.is_sop else _decode_video
        meta["original"] = decode(item, task.settings, writer)
        n_frames = meta["arrays"]["frames"]["shape"][0]
        n_samples = meta["arrays"]["audio"]["shape"][0]
        meta["video_duration"] = n_frames / float(task.settings.video.fps)
        meta["audio_duration"] = n_samples / float(task.settings.audio.sample_rate)
        meta["duration"] = min(meta["video_duration"], meta["audio_duration"])
        audio = writer.view().audio
        meta["audio_peak"] = float(np.max(np.abs(audio)))
        meta["audio_rms"] = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        del audio
        for extra in task.extras:
            extra.compute(writer.view(), writer)
        writer.finish()
        ensure_dir(final.parent)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if (final / "meta.json").exists():
                return "ok", ""  # another process finished the same entry first
            raise _CacheWriteError(f"cannot write {final} ({exc.strerror or exc})") from exc
        tmp = None
        return "ok", ""
    except MediaError as exc:
        reason = _reason(exc, item)
        with contextlib.suppress(OSError):
            with atomic_path(_failure_path(root, key)) as part:
                part.write_text(
                    json.dumps(
                        {
                            "format": CACHE_FORMAT,
                            "source": str(item.path),
                            "ctime_ns": _ctime(item),
                            "reason": reason,
                            "error": type(exc).__name__,
                        }
                    ),
                    encoding="utf-8",
                )
        return "failed", reason
    except (_CacheWriteError, OutputError) as exc:
        return "fatal", str(exc)
    except Exception as exc:  # a bug or an unforeseen library error: report it for this file, go on
        log.debug("preprocessing %s failed:\n%s", item.path, traceback.format_exc())
        return "failed", f"unexpected error ({type(exc).__name__}: {' '.join(str(exc).split())})"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _entry_dir(root: Path, key: str) -> Path:
    return root / "entries" / key[:2] / key


def _ctime(item: VideoItem) -> int | None:
    """Status-change time of the source: a failure is retried after e.g. a permission fix."""
    try:
        return Path(item.path).stat().st_ctime_ns
    except OSError:
        return None


def _failure_path(root: Path, key: str) -> Path:
    return root / "failed" / f"{key}.json"


# ------------------------------------------------------------------------------ the cache


@dataclass
class CacheReport:
    """What :meth:`PreprocessCache.build` did."""

    ready: list[CachedVideo] = field(default_factory=list)
    """Entries ready for training, in the order of the items given."""
    ready_items: list[VideoItem] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """``(source path, one-line reason)`` of every item that cannot be used."""
    failed_items: list[VideoItem] = field(default_factory=list)
    reused: int = 0
    """Entries found already built."""
    decoded: int = 0
    """Entries decoded by this build."""
    known_failures: int = 0
    """Failures remembered from an earlier build (the file has not changed, so it was not retried)."""

    @property
    def total(self) -> int:
        return len(self.ready) + len(self.failed)

    def summary(self) -> str:
        text = f"{len(self.ready)} of {self.total} videos ready ({self.decoded} decoded, {self.reused} reused)"
        if self.failed:
            text += f", {len(self.failed)} skipped"
        return text


class PreprocessCache:
    """Decoded training videos under ``root``, for one set of preprocessing settings.

    ``extras`` are computed for each video after its frames and audio (see :class:`CacheExtra`)
    and are part of the key.
    """

    def __init__(self, root: str | Path, settings: PreprocessSettings | None = None, extras: Sequence[CacheExtra] = ()):
        self.root = Path(root)
        self.settings = settings if settings is not None else PreprocessSettings()
        self.extras = tuple(extras)
        names = [e.name for e in self.extras]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate extra names: {names}")

    # ---- keys and lookups
    def key(self, item: VideoItem) -> str:
        """The entry key of ``item`` (stats its source files; raises MediaError if missing)."""
        payload = {
            "format": CACHE_FORMAT,
            "item": _key_payload(item),
            "settings": self.settings.key_dict(),
            "extras": [[e.name, str(e.version)] for e in self.extras],
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def entry_dir(self, item: VideoItem) -> Path:
        return _entry_dir(self.root, self.key(item))

    def has(self, item: VideoItem) -> bool:
        """True when ``item`` has a complete entry for its current file and these settings."""
        try:
            return (self.entry_dir(item) / "meta.json").exists()
        except MediaError:
            return False

    def failure(self, item: VideoItem) -> str | None:
        """The recorded reason why ``item`` (as it is now) could not be preprocessed, if any."""
        try:
            key = self.key(item)
        except MediaError as exc:
            return _reason(exc, item)
        return self._known_failure(key, item)

    def _known_failure(self, key: str, item: VideoItem) -> str | None:
        path = _failure_path(self.root, key)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("format") != CACHE_FORMAT or data.get("ctime_ns") != _ctime(item):
            return None
        return data.get("reason")

    def get(self, item: VideoItem) -> CachedVideo:
        """The entry of ``item``. Raises :class:`MediaError` if the file could not be used and
        :class:`CacheMissError` if it was never preprocessed (or changed since)."""
        key = self.key(item)
        folder = _entry_dir(self.root, key)
        if (folder / "meta.json").exists():
            return CachedVideo(folder)
        reason = self._known_failure(key, item)
        if reason is not None:
            raise MediaError(f"cannot be used for training: {reason}", item.path)
        raise CacheMissError(
            "is not in the preprocessing cache (new, or changed since it was preprocessed)",
            item.path,
            f"preprocess it into {self.root} first",
        )

    # ---- building
    def build(self, items: Sequence[VideoItem], jobs: int = 1, retry_failed: bool = False) -> CacheReport:
        """Decode every item that has no entry yet, over ``jobs`` processes, with a progress bar.

        Files that cannot be used are printed as one error line each and listed in the report;
        the build goes on with the others. Failures are remembered: an unchanged file that failed
        before is reported again without decoding, unless ``retry_failed``. A cache folder that
        cannot be written raises :class:`OutputError`.
        """
        items = list(items)
        if jobs is None or jobs <= 0:
            jobs = os.cpu_count() or 1
        for sub in ("entries", "failed", "tmp"):
            ensure_dir(self.root / sub)
        self._tag()
        self._clean_tmp()

        status: list[tuple[str, str]] = [("", "")] * len(items)  # per item: (state, key or reason)
        todo: dict[str, list[int]] = {}
        report = CacheReport()
        for i, item in enumerate(items):
            try:
                key = self.key(item)
            except MediaError as exc:
                status[i] = ("failed", _reason(exc, item))
                continue
            if (_entry_dir(self.root, key) / "meta.json").exists():
                status[i] = ("reused", key)
                continue
            known = None if retry_failed else self._known_failure(key, item)
            if known is not None:
                status[i] = ("known", known)
                continue
            todo.setdefault(key, []).append(i)

        with make_progress() as progress:
            task = progress.add_task("Preprocessing", total=len(items), status="")
            n_failed = 0

            def note_failed(i: int, reason: str) -> None:
                nonlocal n_failed
                n_failed += 1
                error_line(f"{items[i].path}: {reason}")
                progress.update(task, status=f"[red]{n_failed} skipped")

            done_before = 0
            for i, (state, text) in enumerate(status):
                if state in ("failed", "known"):
                    note_failed(i, text)
                if state:
                    done_before += 1
            progress.advance(task, done_before)

            def finish(key: str, result: tuple[str, str]) -> None:
                state, text = result
                if state == "fatal":
                    raise OutputError(text, None, f"choose a writable cache folder with free space (now {self.root})")
                for i in todo[key]:
                    if state == "ok":
                        status[i] = ("decoded", key)
                    else:
                        status[i] = ("failed", text)
                        note_failed(i, text)
                progress.advance(task, len(todo[key]))

            tasks = [_Task(items[idx[0]], key, self.root, self.settings, self.extras) for key, idx in todo.items()]
            if jobs == 1 or len(tasks) <= 1:
                for t in tasks:
                    finish(t.key, _build_entry(t))
            else:
                self._run_pool(tasks, jobs, finish)

        for i, (state, text) in enumerate(status):
            if state in ("reused", "decoded"):
                report.ready.append(CachedVideo(_entry_dir(self.root, text)))
                report.ready_items.append(items[i])
                if state == "reused":
                    report.reused += 1
            else:
                report.failed.append((Path(items[i].path), text))
                report.failed_items.append(items[i])
                if state == "known":
                    report.known_failures += 1
        report.decoded = sum(1 for s, _ in status if s == "decoded")
        log.info("preprocessing: %s", report.summary())
        return report

    def _run_pool(self, tasks: list[_Task], jobs: int, finish) -> None:
        # "spawn": workers start clean, whatever threads (torch, CUDA) the parent already runs.
        ctx = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx)
        try:
            pending = {executor.submit(_build_entry, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # worker died (killed, out of memory)
                        result = ("failed", f"worker process failed ({type(exc).__name__}: {exc})")
                    finish(t.key, result)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown(wait=True)

    def _tag(self) -> None:
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            with contextlib.suppress(OSError):
                tag.write_text(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This file is a cache directory tag created by avsplit (preprocessed training videos).\n",
                    encoding="utf-8",
                )

    def _clean_tmp(self) -> None:
        """Remove half-written entries of processes on this host that no longer run."""
        host = socket.gethostname().replace("@", "_")
        tmp = self.root / "tmp"
        for p in tmp.iterdir() if tmp.is_dir() else ():
            parts = p.name.split("@")
            if len(parts) < 4 or parts[1] != host:
                continue
            try:
                pid = int(parts[2])
            except ValueError:
                continue
            if pid == os.getpid() or _alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
