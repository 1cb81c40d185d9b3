"""``avsplit data``: download a dataset of YouTube solo performances into ``OUT/<category>/<id>.mp4``.

Each video of an index (:mod:`avsplit.data.indexes`) is fetched by a downloader command
(``yt-dlp`` by default, installed with ``pip install 'avsplit[data]'``; any command that takes
yt-dlp's ``-o TEMPLATE -- URL`` works), trimmed to its segment when the index gives one,
re-encoded by PyAV into one uniform MP4 (H.264 yuv420p at a constant frame rate, short side at
most ``short_side``, AAC sound) and verified with :func:`avsplit.io.probe`.

Resumable: ``OUT/manifest.json`` (written atomically after every video) records each video's
state: ``downloaded``, ``unavailable`` (removed, private, blocked: not retried unless asked) or
``failed`` (network, disk, anything else: retried by the next run). Finished files are written
under a temporary name and renamed, so a killed run never leaves a half-written ``<id>.mp4``;
the downloader's partial files stay in ``OUT/.download/`` so that it can continue them.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from avsplit.console import console, error_line, log, make_progress, warn_line
from avsplit.data.indexes import IndexEntry
from avsplit.data.transcode import check_uniform, normalize_video
from avsplit.errors import ConfigError, MediaError, OutputError
from avsplit.files import atomic_path, ensure_dir

MANIFEST_NAME = "manifest.json"
WORK_FOLDER = ".download"
#: yt-dlp format: a single file with sound and picture up to 480 lines (needs no ffmpeg to merge).
DEFAULT_FORMAT = "b[height<=480][ext=mp4]/b[height<=480]/b/bv*[height<=480]+ba"
#: Below this much free space in OUT no download is started (reported as disk full).
MIN_FREE_BYTES = 50 * 2**20
# Extensions of a downloader's partial or side files, never taken for the download itself.
_PARTIAL_SUFFIXES = (".part", ".ytdl", ".temp", ".tmp", ".json", ".aria2")

DOWNLOADED, PRESENT, UNAVAILABLE, FAILED, NOT_ATTEMPTED = "downloaded", "already there", "unavailable", "failed", "not attempted"

_DISK = ("no space left on device", "errno 28", "disk quota exceeded")
_BOT = ("confirm you're not a bot", "confirm you’re not a bot")
_UNAVAILABLE = (
    "video unavailable", "private video", "has been removed", "has been terminated", "no longer available",
    "not available in your country", "not made this video available", "copyright", "confirm your age",
    "inappropriate for some users", "members-only", "join this channel", "premieres in", "does not exist",
)
_NETWORK = (
    "unable to download webpage", "unable to download video data", "unable to download api page",
    "urlopen error", "timed out", "temporary failure in name resolution", "name or service not known",
    "connection reset", "connection refused", "network is unreachable", "http error 5", "http error 429",
    "remote end closed connection", "ssl:", "incompleteread", "connection aborted", "failed to resolve",
)
_NETWORK_FIX = "check the network connection, then run the same command again (it resumes)"
_DISK_FIX = "free disk space in the output folder, then run the same command again (it resumes)"


class VideoFailure(Exception):
    """One video could not be fetched. ``kind``: unavailable, network, disk, bot or failed."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _error_text(output: str) -> str:
    """The downloader's own error line (yt-dlp: ``ERROR: [youtube] ID: reason``), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.upper().startswith("ERROR")]
    text = (errors or lines or ["no message"])[-1]
    if text.upper().startswith("ERROR:"):
        text = text[6:].strip()
    if text.startswith("[") and "]" in text:  # "[youtube] ID: reason" -> "reason"
        rest = text.split("]", 1)[1].strip()
        text = rest.split(": ", 1)[1] if ": " in rest else rest
    return " ".join(text.split())[:300]


def classify_failure(output: str) -> VideoFailure:
    """Tell a removed video from a network or disk problem by the downloader's messages."""
    lowered = output.lower()
    reason = _error_text(output)
    if any(s in lowered for s in _DISK):
        return VideoFailure("disk", f"disk full ({reason})")
    if any(s in lowered for s in _BOT):
        return VideoFailure("bot", f"{reason}; pass your browser's cookies: --downloader \"yt-dlp --cookies-from-browser firefox\"")
    if any(s in lowered for s in _UNAVAILABLE):
        return VideoFailure("unavailable", reason)
    if any(s in lowered for s in _NETWORK):
        return VideoFailure("network", f"network error ({reason}); {_NETWORK_FIX}")
    return VideoFailure("failed", f"downloader failed ({reason})")


def downloader_command(text: str) -> list[str]:
    """Split ``--downloader`` into an argument list and check that its program exists."""
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"cannot parse --downloader {text!r} ({exc})") from None
    if not command:
        raise ConfigError("--downloader is empty", fix="give a command such as yt-dlp")
    if shutil.which(command[0]) is None:
        raise ConfigError(f"downloader {command[0]!r} not found",
                          fix="install it with pip install 'avsplit[data]' (which brings yt-dlp), or give its path with --downloader CMD")
    return command


def run_downloader(command: Sequence[str], entry: IndexEntry, work: Path, yt_format: str) -> Path:
    """Fetch ``entry``'s video into the folder ``work``; return the downloaded file."""
    ensure_dir(work)
    free = shutil.disk_usage(work).free
    if free < MIN_FREE_BYTES:
        raise VideoFailure("disk", f"disk full (only {free / 2**20:.0f} MB free)")
    args = [*command, "--no-playlist", "--no-progress", "--socket-timeout", "30", "--retries", "3",
            "-f", yt_format, "-o", str(work / f"{entry.video_id}.%(ext)s"), "--", entry.url]
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise VideoFailure("failed", f"cannot run the downloader ({exc.strerror or exc})") from exc
    if result.returncode != 0:
        raise classify_failure(result.stderr + "\n" + result.stdout)
    found = [p for p in work.glob(f"{entry.video_id}.*") if p.is_file()
             and p.name.count(".") == entry.video_id.count(".") + 1 and not p.name.endswith(_PARTIAL_SUFFIXES)]
    if not found:
        raise VideoFailure("failed", f"the downloader exited without error but wrote no file into {work}")
    return max(found, key=lambda p: p.stat().st_size)


def _is_disk_full(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if getattr(chain, "errno", None) == 28 or "no space left" in str(chain).lower():
            return True
        chain = chain.__cause__ or chain.__context__
    return False


@dataclass
class Manifest:
    """``OUT/manifest.json``: each video's state, rewritten atomically after every change."""

    path: Path
    dataset: str
    videos: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, dataset: str) -> "Manifest":
        path = out / MANIFEST_NAME
        if not path.exists():
            return cls(path, dataset)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            videos = dict(data["videos"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"is not a manifest of avsplit data ({exc})", path,
                              "move it away; the videos already there are found again") from None
        return cls(path, data.get("dataset", dataset), videos)

    def record(self, entry: IndexEntry, state: str, reason: str | None = None, **extra) -> None:
        self.videos[entry.key] = {"category": entry.category, "id": entry.video_id,
                                  "segment": list(entry.segment) if entry.segment else None,
                                  "state": state, "reason": reason, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        self.save()

    def save(self) -> None:
        text = json.dumps({"dataset": self.dataset, "videos": self.videos}, indent=1, sort_keys=True)
        try:
            with atomic_path(self.path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            if _is_disk_full(exc):
                raise OutputError("cannot write the manifest: disk full", self.path, _DISK_FIX) from exc
            raise OutputError(f"cannot write the manifest ({exc.strerror or exc})", self.path,
                              "choose a writable output folder") from exc


@dataclass
class DataSummary:
    """Outcome of one ``avsplit data`` run: ``(key, detail)`` pairs per state."""

    out: Path
    downloaded: list = field(default_factory=list)
    present: list = field(default_factory=list)
    unavailable: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    not_attempted: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted


def video_path(out: Path, entry: IndexEntry) -> Path:
    return out / entry.category / f"{entry.video_id}.mp4"


def clean_stale_temporaries(out: Path) -> int:
    """Remove the temporary outputs (``.<stem>.*.part.<ext>``) of an interrupted run; return how many."""
    count = 0
    for folder in [out, *(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        for tmp in folder.glob(".*.part.*"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                count += 1
    return count


def already_there(out: Path, entry: IndexEntry, record: dict | None) -> bool:
    """Whether ``entry``'s final file exists and is usable (checked with ``probe`` unless the
    manifest already recorded exactly this file)."""
    path = video_path(out, entry)
    if not path.is_file():
        return False
    segment = list(entry.segment) if entry.segment else None
    if record is not None and record.get("segment") != segment:
        return False  # the index asks for another part of the video now
    if record is not None and record.get("state") == DOWNLOADED and record.get("bytes") == path.stat().st_size:
        return True
    try:
        check_uniform(path)
    except MediaError:
        return False
    return True


def fetch_video(entry: IndexEntry, out: Path, command: Sequence[str], yt_format: str, fps: float,
                short_side: int | None) -> dict:
    """Download, trim, re-encode and verify one video; return its manifest details.

    Raises :class:`VideoFailure` for every problem of this video (the batch goes on).
    """
    try:
        return _fetch_video(entry, out, command, yt_format, fps, short_side)
    except VideoFailure:
        raise
    except Exception as exc:  # anything else that goes wrong with this one video is its failure, not the batch's
        if _is_disk_full(exc):
            raise VideoFailure("disk", f"disk full while writing {entry.video_id}.mp4") from exc
        raise VideoFailure("failed", f"cannot convert the download: {' '.join(str(exc).split()) or type(exc).__name__}") from exc


def _fetch_video(entry: IndexEntry, out: Path, command: Sequence[str], yt_format: str, fps: float,
                 short_side: int | None) -> dict:
    work = out / WORK_FOLDER / entry.category / entry.video_id
    source = run_downloader(command, entry, work, yt_format)
    final = video_path(out, entry)
    try:
        info = normalize_video(source, final, entry.segment, fps=fps, short_side=short_side)
    except Exception as exc:
        if not _is_disk_full(exc):
            shutil.rmtree(work, ignore_errors=True)  # a damaged download: the next run fetches it afresh
        raise
    shutil.rmtree(work, ignore_errors=True)
    return {"file": str(final.relative_to(out)), "bytes": final.stat().st_size, "seconds": round(info.duration, 3),
            "size": [info.width, info.height], "fps": info.fps}


def _plan(entries: Sequence[IndexEntry], out: Path, manifest: Manifest, summary: DataSummary,
          retry_unavailable: bool) -> list[IndexEntry]:
    todo = []
    for entry in entries:
        record = manifest.videos.get(entry.key)
        if already_there(out, entry, record):
            summary.present.append((entry.key, ""))
            if record is None or record.get("state") != DOWNLOADED:
                path = video_path(out, entry)
                manifest.record(entry, DOWNLOADED, file=str(path.relative_to(out)), bytes=path.stat().st_size)
        elif record is not None and record.get("state") == UNAVAILABLE and not retry_unavailable:
            summary.unavailable.append((entry.key, record.get("reason") or "unavailable"))
        else:
            todo.append(entry)
    return todo


def fetch_dataset(entries: Sequence[IndexEntry], out: str | Path, *, dataset: str, downloader: str = "yt-dlp",
                  jobs: int = 1, fps: float = 25.0, short_side: int | None = 360, yt_format: str = DEFAULT_FORMAT,
                  retry_unavailable: bool = False) -> DataSummary:
    """Fetch every entry into ``OUT/<category>/<id>.mp4`` with ``jobs`` downloads in parallel.

    Videos already there are kept; videos recorded as unavailable are skipped unless
    ``retry_unavailable``. Each problem is one line naming the video; a full disk stops the run
    (the rest are reported as not attempted).
    """
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if not fps > 0:
        raise ConfigError("--fps must be positive")
    out = ensure_dir(out)
    command = downloader_command(downloader)
    manifest = Manifest.open(out, dataset)
    stale = clean_stale_temporaries(out)
    if stale:
        log.info(f"removed {stale} unfinished file(s) of an interrupted run")
    summary = DataSummary(out)
    todo = _plan(entries, out, manifest, summary, retry_unavailable)
    stop = threading.Event()

    def job(entry: IndexEntry) -> dict | None:
        if stop.is_set():
            return None
        try:
            return fetch_video(entry, out, command, yt_format, fps, short_side)
        except VideoFailure as exc:
            if exc.kind == "disk":
                stop.set()  # before this worker takes the next video
            raise

    with make_progress() as progress, ThreadPoolExecutor(max_workers=jobs) as pool:
        task = progress.add_task("downloading", total=len(todo), status="")
        futures = {pool.submit(job, entry): entry for entry in todo}
        try:
            for future in as_completed(futures):
                entry = futures[future]
                progress.update(task, advance=1, status=entry.key)
                try:
                    details = future.result()
                except VideoFailure as exc:
                    _record_failure(entry, exc, manifest, summary, error_line, warn_line)
                    continue
                if details is None:
                    summary.not_attempted.append((entry.key, "stopped: disk full"))
                    continue
                manifest.record(entry, DOWNLOADED, **details)
                summary.downloaded.append((entry.key, f"{details['seconds']:.1f} s"))
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    if stop.is_set() and summary.not_attempted:
        error_line(f"{out}: disk full: {len(summary.not_attempted)} video(s) not attempted. {_DISK_FIX[0].upper()}{_DISK_FIX[1:]}.")
    return summary


def _record_failure(entry, exc: VideoFailure, manifest: Manifest, summary: DataSummary, error_line, warn_line) -> None:
    if exc.kind == "unavailable":
        manifest.record(entry, UNAVAILABLE, exc.reason)
        summary.unavailable.append((entry.key, exc.reason))
        warn_line(f"{entry.key}: unavailable: {exc.reason}")
    else:
        manifest.record(entry, FAILED, exc.reason, kind=exc.kind)
        summary.failed.append((entry.key, exc.reason))
        error_line(f"{entry.key}: {exc.reason}")


def print_data_summary(summary: DataSummary) -> None:
    """The closing table: downloaded, already there, unavailable (with reasons), failed."""
    from rich.table import Table

    table = Table(title=f"avsplit data: {summary.out}", show_lines=False)
    table.add_column("state")
    table.add_column("videos", justify="right")
    table.add_column("details")
    rows = [(DOWNLOADED, summary.downloaded), (PRESENT, summary.present), (UNAVAILABLE, summary.unavailable),
            (FAILED, summary.failed), (NOT_ATTEMPTED, summary.not_attempted)]
    for state, items in rows:
        if state == NOT_ATTEMPTED and not items:
            continue
        details = ""
        if state in (UNAVAILABLE, FAILED, NOT_ATTEMPTED):
            details = "\n".join(f"{key}: {reason}" for key, reason in items)
        table.add_row(state, str(len(items)), details)
    console.print(table)
