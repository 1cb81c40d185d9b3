"""File-system helpers: finding videos, atomic outputs."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

from avsplit.errors import AvsplitError, OutputError

#: File extensions searched for when a directory is given as input. FFmpeg reads many more
#: containers; a file passed explicitly is tried whatever its extension.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
        ".m2ts", ".flv", ".wmv", ".3gp", ".ogv", ".vob", ".mxf", ".gif",
    }
)
#: Sound-only files: found in an input folder, they are skipped and counted in the summary (a user
#: may have expected them to be separated); other files (notes, truth files) are passed over quietly.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff"})


def _file_mode() -> int:
    """Permissions of a new regular file under the current umask (mkstemp makes files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


#: Words a user may write after a flag (``--overwrite true``) that then arrive as an input path.
_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})

#: Name of the temporaries :func:`atomic_path` writes: ``.<stem>.<random>.part<suffix>``.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[^.]+)?$")
#: A temporary untouched for this long was left by a run that was killed (kill -9, power loss).
STALE_SECONDS = 600.0


def _missing(path: Path) -> AvsplitError:
    """The error for an input that cannot be opened: missing, a looping or dangling link, a flag's value."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return AvsplitError("is a symbolic link that loops (it points back to itself)", path, "fix or remove the link")
            return AvsplitError("is a symbolic link to a file that does not exist", path, "fix or remove the link")
    if str(path).lower() in _FLAG_VALUES:
        return AvsplitError("no such file or directory", path,
                            "flags take no value: write --overwrite, not --overwrite true")
    return AvsplitError("no such file or directory", path, "check the path")


def find_videos(inputs: Iterable[str | Path], ignored: list | None = None) -> list[Path]:
    """Expand files and directories into a sorted, de-duplicated list of video paths.

    Directories are searched recursively for files with a known video extension (hidden files
    and folders are skipped; sound-only files are appended to ``ignored`` when given, so that a
    summary can say so); files given explicitly are kept whatever their extension. A path
    that does not exist raises :class:`AvsplitError`.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            visible = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            candidates = [p for p in visible if p.suffix.lower() in VIDEO_EXTENSIONS]
            if ignored is not None:
                ignored.extend(p for p in visible if p.suffix.lower() in AUDIO_EXTENSIONS)
        elif path.exists():
            candidates = [path]
        else:
            raise _missing(path)
        for p in candidates:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)
    return found


def truth_path(video: str | Path) -> Path:
    """The ground truth beside a video (``<stem>.truth.json``, as ``avsplit synth`` writes it)."""
    video = Path(video)
    return video.with_name(video.stem + ".truth.json")


def truth_source_path(video: str | Path, k: int) -> Path:
    """The clean sound of source ``k`` (from 1) beside a video (``<stem>.source-<k>.wav``)."""
    video = Path(video)
    return video.with_name(f"{video.stem}.source-{k}.wav")


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` when the block succeeds.

    On any exception the temporary file is removed and ``final`` is left untouched. The
    temporary name keeps the final extension (``suffix``, default ``final``'s) so that writers
    that pick a format from the extension still work.
    """
    final = Path(final)
    ensure_dir(final.parent)
    suffix = final.suffix if suffix is None else suffix
    _remove_stale(final.parent.glob(f".{glob.escape(final.stem)}.*.part{glob.escape(suffix)}"), 60.0)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def ensure_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if needed; raise :class:`OutputError` with a fix if impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError("exists and is not a folder", path, "choose another output folder") from exc
    except OSError as exc:
        raise OutputError(f"cannot create folder ({exc.strerror})", path, "choose a writable output folder") from exc
    if not os.access(path, os.W_OK):
        raise OutputError("folder is not writable", path, "choose a writable output folder or fix its permissions")
    return path


def _remove_stale(paths: Iterable[Path], max_age: float) -> int:
    removed = 0
    now = time.time()
    for p in paths:
        with contextlib.suppress(OSError):
            if _TEMPORARY.match(p.name) and p.is_file() and not p.is_symlink() and now - p.stat().st_mtime > max_age:
                p.unlink()
                removed += 1
    return removed


def clean_stale_temporaries(folder: str | Path, max_age: float = STALE_SECONDS) -> int:
    """Delete temporaries of :func:`atomic_path` (``.<stem>.<random>.part<ext>``) in ``folder`` and its
    sub-folders that nobody has written for ``max_age`` seconds: what a killed run left. Returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    candidates = list(folder.glob(".*.part*")) + list(folder.glob("*/.*.part*"))
    return _remove_stale(candidates, max_age)


def finite_json(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, in dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_text(obj, **options) -> str:
    """Valid JSON text of ``obj`` (``json.dumps`` options): a score that is not a finite number is
    written as ``null``, never as the ``NaN``/``Infinity`` that JSON readers reject."""
    return json.dumps(finite_json(obj), allow_nan=False, **options)
