"""Decoding one training video (a media file, or a Sound-of-Pixels frame folder) into its cache entry.

Runs in the cache's worker processes (or in-process for one job).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from avsplit import __version__
from avsplit import io as media
from avsplit.config import PreprocessSettings
from avsplit.console import log
from avsplit.data.entry import CACHE_FORMAT, CacheWriteError, EntryWriter
from avsplit.errors import AvsplitError, EmptyMediaError, MediaError, OutputError, UnreadableMediaError
from avsplit.files import atomic_path, ensure_dir
from avsplit.io.container import FIX_UNREADABLE
from avsplit.scan import VideoItem, sop_frame_name


# ------------------------------------------------------------------------------ decoding


def _stat(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def key_payload(item: VideoItem) -> dict[str, Any]:
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
        raise EmptyMediaError("video stream has no decodable frames", path, FIX_UNREADABLE)
    return times


def _check_audio(audio: np.ndarray, path: Path) -> None:
    if audio.size == 0:
        raise EmptyMediaError("audio stream has no decodable samples", path, FIX_UNREADABLE)
    if not np.all(np.isfinite(audio)):
        raise UnreadableMediaError("audio decodes to invalid (NaN/inf) samples", path, FIX_UNREADABLE)


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
class BuildTask:
    item: VideoItem
    key: str
    root: Path
    settings: PreprocessSettings
    extras: tuple = ()


def failure_reason(exc: BaseException, item: VideoItem) -> str:
    """The one-line reason of a per-file failure, without the item's own path in front."""
    text = " ".join(str(exc).split())
    if isinstance(exc, AvsplitError) and exc.path is not None and Path(exc.path) == Path(item.path):
        prefix = f"{exc.path}: "
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _tmp_prefix(key: str) -> str:
    return f"{key[:16]}@{socket.gethostname().replace('@', '_')}@{os.getpid()}@"


def build_entry(task: BuildTask) -> tuple[str, str]:
    """Decode one video into its entry. Returns ``("ok", "")``, ``("failed", reason)`` or
    ``("fatal", message)``. Runs in a worker process (or in-process for ``jobs=1``)."""
    item, key, root = task.item, task.key, task.root
    final = entry_folder(root, key)
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
            raise CacheWriteError(f"cannot write {final} ({exc.strerror or exc})") from exc
        tmp = None
        return "ok", ""
    except MediaError as exc:
        reason = failure_reason(exc, item)
        with contextlib.suppress(OSError):
            with atomic_path(failure_path(root, key)) as part:
                part.write_text(
                    json.dumps(
                        {
                            "format": CACHE_FORMAT,
                            "source": str(item.path),
                            "ctime_ns": source_ctime(item),
                            "reason": reason,
                            "error": type(exc).__name__,
                        }
                    ),
                    encoding="utf-8",
                )
        return "failed", reason
    except (CacheWriteError, OutputError) as exc:
        return "fatal", str(exc)
    except Exception as exc:  # a bug or an unforeseen library error: report it for this file, go on
        log.debug("preprocessing %s failed:\n%s", item.path, traceback.format_exc())
        return "failed", f"unexpected error ({type(exc).__name__}: {' '.join(str(exc).split())})"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def entry_folder(root: Path, key: str) -> Path:
    return root / "entries" / key[:2] / key


def source_ctime(item: VideoItem) -> int | None:
    """Status-change time of the source: a failure is retried after e.g. a permission fix."""
    try:
        return Path(item.path).stat().st_ctime_ns
    except OSError:
        return None


def failure_path(root: Path, key: str) -> Path:
    return root / "failed" / f"{key}.json"
