"""File-system helpers: finding videos, atomic outputs."""

from __future__ import annotations

import contextlib
import os
import tempfile
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


def _file_mode() -> int:
    """Permissions of a new regular file under the current umask (mkstemp makes files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories into a sorted, de-duplicated list of video paths.

    Directories are searched recursively for files with a known video extension (hidden files
    and folders are skipped); files given explicitly are kept whatever their extension.
    A path that does not exist raises :class:`AvsplitError`.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in VIDEO_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.exists():
            candidates = [path]
        else:
            raise AvsplitError("no such file or directory", path, "check the path")
        for p in candidates:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)
    return found


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
