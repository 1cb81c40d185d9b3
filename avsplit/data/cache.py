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
import multiprocessing
import os
import shutil
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from avsplit.config import PreprocessSettings
from avsplit.console import error_line, log, make_progress
from avsplit.data.decode import BuildTask, build_entry, entry_folder, failure_path, failure_reason, key_payload, source_ctime
from avsplit.data.entry import CACHE_FORMAT, CacheExtra, CacheMissError, CachedVideo
from avsplit.errors import MediaError, OutputError
from avsplit.files import ensure_dir
from avsplit.scan import VideoItem


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
            "item": key_payload(item),
            "settings": self.settings.key_dict(),
            "extras": [[e.name, str(e.version)] for e in self.extras],
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def entry_dir(self, item: VideoItem) -> Path:
        return entry_folder(self.root, self.key(item))

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
            return failure_reason(exc, item)
        return self._known_failure(key, item)

    def _known_failure(self, key: str, item: VideoItem) -> str | None:
        path = failure_path(self.root, key)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("format") != CACHE_FORMAT or data.get("ctime_ns") != source_ctime(item):
            return None
        return data.get("reason")

    def get(self, item: VideoItem) -> CachedVideo:
        """The entry of ``item``. Raises :class:`MediaError` if the file could not be used and
        :class:`CacheMissError` if it was never preprocessed (or changed since)."""
        key = self.key(item)
        folder = entry_folder(self.root, key)
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
        status, todo = self._statuses(items, retry_failed)
        self._decode(items, status, todo, jobs)
        report = self._report(items, status)
        log.info("preprocessing: %s", report.summary())
        return report

    def _statuses(self, items: list[VideoItem], retry_failed: bool) -> tuple[list[tuple[str, str]], dict[str, list[int]]]:
        """Per item ``(state, key or reason)``, state ``failed``, ``reused``, ``known`` (a remembered
        failure) or ``""`` (to decode); and the items to decode by key (one decode serves every item of
        a key)."""
        status: list[tuple[str, str]] = [("", "")] * len(items)
        todo: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            try:
                key = self.key(item)
            except MediaError as exc:
                status[i] = ("failed", failure_reason(exc, item))
                continue
            if (entry_folder(self.root, key) / "meta.json").exists():
                status[i] = ("reused", key)
                continue
            known = None if retry_failed else self._known_failure(key, item)
            if known is not None:
                status[i] = ("known", known)
                continue
            todo.setdefault(key, []).append(i)
        return status, todo

    def _decode(self, items: list[VideoItem], status: list[tuple[str, str]], todo: dict[str, list[int]],
                jobs: int) -> None:
        """Decode the entries of ``todo`` (over ``jobs`` processes) with a progress bar, marking their items
        ``decoded`` or ``failed`` in ``status``; each failure is one error line."""
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

            tasks = [BuildTask(items[idx[0]], key, self.root, self.settings, self.extras) for key, idx in todo.items()]
            if jobs == 1 or len(tasks) <= 1:
                for t in tasks:
                    finish(t.key, build_entry(t))
            else:
                self._run_pool(tasks, jobs, finish)

    def _report(self, items: list[VideoItem], status: list[tuple[str, str]]) -> CacheReport:
        report = CacheReport()
        for i, (state, text) in enumerate(status):
            if state in ("reused", "decoded"):
                report.ready.append(CachedVideo(entry_folder(self.root, text)))
                report.ready_items.append(items[i])
                if state == "reused":
                    report.reused += 1
            else:
                report.failed.append((Path(items[i].path), text))
                report.failed_items.append(items[i])
                if state == "known":
                    report.known_failures += 1
        report.decoded = sum(1 for s, _ in status if s == "decoded")
        return report

    def _run_pool(self, tasks: list[BuildTask], jobs: int, finish) -> None:
        # "spawn": workers start clean, whatever threads (torch, CUDA) the parent already runs.
        ctx = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx)
        try:
            pending = {executor.submit(build_entry, t): t for t in tasks}
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
