"""File-system helpers for outputs: atomic writes, folders, stale temporaries, strict JSON."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

from avsplit.errors import OutputError

def _file_mode() -> int:
    """Permissions of a new regular file under the current umask (mkstemp makes files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


#: Name of the temporaries :func:`atomic_path` writes: ``.<stem>.<random>.part<suffix>``.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[^.]+)?$")
#: A temporary untouched for this long was left by a run that was killed (kill -9, power loss).
STALE_SECONDS = 600.0


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
