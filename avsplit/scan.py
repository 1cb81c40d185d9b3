"""Finding what the commands read, without decoding anything: videos among files and folders given as
inputs, the videos of a dataset (a folder, optionally one sub-folder per category, or a Sound-of-Pixels
index CSV: ``AUDIO_PATH,FRAMES_PATH,NUM_FRAMES`` rows, no header) and the truth files beside a video.

Decoding happens elsewhere: once into the training cache (:mod:`avsplit.data.cache`), or streamed by
the commands (:mod:`avsplit.io`).
"""

from __future__ import annotations

import csv
import errno
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from avsplit.errors import AvsplitError

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoItem", "DatasetError", "SOP_FPS", "find_videos", "scan_videos",
           "read_sop_csv", "load_dataset", "sop_frame_name", "truth_path", "truth_source_path"]

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


#: Words a user may write after a flag (``--overwrite true``) that then arrive as an input path.
_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})


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


#: Frame rate at which the Sound of Pixels code extracts the JPEG frames of its index CSVs.
SOP_FPS = 8.0


class DatasetError(AvsplitError):
    """A dataset folder or index file cannot be used as given."""


@dataclass(frozen=True)
class VideoItem:
    """One training video, as found on disk (nothing decoded yet).

    For a video file, ``path`` is the file. For a Sound-of-Pixels row, ``path`` is the audio
    file (also available as :attr:`audio_path`), ``frames_dir`` the folder of JPEG frames
    ``000001.jpg, 000002.jpg, ...`` extracted at ``frames_fps``, and ``num_frames`` their count.
    """

    path: Path
    category: str | None = None
    id: str = ""
    frames_dir: Path | None = None
    num_frames: int | None = None
    frames_fps: float | None = None

    @property
    def is_sop(self) -> bool:
        """True for a Sound-of-Pixels item (separate audio file and JPEG frame folder)."""
        return self.frames_dir is not None

    @property
    def audio_path(self) -> Path:
        """The file the sound is decoded from (the video itself, or the SoP audio file)."""
        return self.path

    @property
    def sources(self) -> tuple[Path, ...]:
        """Every path the item's content comes from."""
        return (self.path,) if self.frames_dir is None else (self.path, self.frames_dir)

    def __str__(self) -> str:
        return str(self.path)


def sop_frame_name(index: int) -> str:
    """File name of the SoP frame with 1-based ``index``: ``000001.jpg``."""
    return f"{index:06d}.jpg"


def scan_videos(root: str | Path) -> list[VideoItem]:
    """Every video under ``root`` (recursive, hidden files skipped), sorted by path.

    The category is the name of the folder holding the video (``root/<category>/<id>.mp4`` as in
    MUSIC; also ``root/solos/<category>/<id>.mp4`` as ``avsplit synth`` writes), and None for a
    video directly in ``root``. The id is the path
    relative to ``root`` without its extension (with it, where two files would clash).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("is not a folder", root, "give a folder of videos")
    paths = sorted(find_videos([root]), key=lambda p: p.relative_to(root).as_posix())
    rel = [p.relative_to(root) for p in paths]
    stems = [r.with_suffix("").as_posix() for r in rel]
    clashes = {s for s, n in Counter(stems).items() if n > 1}
    items = []
    for path, r, stem in zip(paths, rel, stems):
        category = r.parts[-2] if len(r.parts) > 1 else None
        items.append(VideoItem(path=path, category=category, id=r.as_posix() if stem in clashes else stem))
    return items


def _resolve(text: str, base: Path) -> Path:
    """A CSV path: absolute as is; relative to the CSV's folder, else to the working folder."""
    p = Path(text)
    if p.is_absolute():
        return p
    beside = base / p
    if beside.exists() or not p.exists():
        return beside
    return p


def read_sop_csv(path: str | Path, fps: float = SOP_FPS) -> list[VideoItem]:
    """Items of a Sound-of-Pixels index CSV: rows ``AUDIO_PATH,FRAMES_PATH,NUM_FRAMES``.

    There is no header (a first row whose last field is ``NUM_FRAMES`` is tolerated), blank
    lines are skipped, and relative paths are taken relative to the CSV's folder (or the
    working folder, where only that exists). The category is the name of the audio file's
    parent folder, the id ``<category>/<audio stem>``. A malformed row raises
    :class:`DatasetError` naming the file and line. Files are not opened here: a missing audio
    file or frame folder is reported per item when the cache is built.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError("no such file", path, "check the path") from None
    except UnicodeDecodeError:
        raise DatasetError("is not a text CSV file", path, "give a Sound-of-Pixels index CSV") from None
    except OSError as exc:
        raise DatasetError(f"cannot read ({exc.strerror})", path, "check the file's permissions") from None
    base = path.parent
    items: list[VideoItem] = []
    fix = "each row must be AUDIO_PATH,FRAMES_PATH,NUM_FRAMES"
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not f.strip() for f in row):
            continue
        where = f"{path}:{lineno}"
        if len(row) != 3:
            raise DatasetError(f"expected 3 comma-separated fields, found {len(row)}", where, fix)
        audio, frames, count = (f.strip() for f in row)
        if lineno == 1 and count.upper() == "NUM_FRAMES":
            continue
        if not audio or not frames:
            raise DatasetError("empty AUDIO_PATH or FRAMES_PATH", where, fix)
        try:
            n = int(count)
        except ValueError:
            raise DatasetError(f"NUM_FRAMES is not a whole number ({count!r})", where, fix) from None
        if n <= 0:
            raise DatasetError(f"NUM_FRAMES must be positive, got {n}", where, fix)
        audio_path = _resolve(audio, base)
        category = audio_path.parent.name or None
        items.append(
            VideoItem(
                path=audio_path,
                category=category,
                id=f"{category}/{audio_path.stem}" if category else audio_path.stem,
                frames_dir=_resolve(frames, base),
                num_frames=n,
                frames_fps=float(fps),
            )
        )
    if not items:
        raise DatasetError("has no rows", path, fix)
    return items


def load_dataset(spec: str | Path | Iterable[str | Path]) -> list[VideoItem]:
    """Items from a folder of videos or a Sound-of-Pixels ``.csv`` index (or several of them).

    Raises :class:`DatasetError` when nothing usable is found.
    """
    if isinstance(spec, (str, Path)):
        specs = [Path(spec)]
    else:
        specs = [Path(s) for s in spec]
    items: list[VideoItem] = []
    for s in specs:
        if s.is_dir():
            found = scan_videos(s)
            if not found:
                raise DatasetError("contains no video files", s, "give a folder of videos (e.g. DIR/<category>/<id>.mp4)")
            items.extend(found)
        elif s.suffix.lower() == ".csv":
            items.extend(read_sop_csv(s))
        elif not s.exists():
            raise DatasetError("no such file or folder", s, "check the path")
        else:
            raise DatasetError(
                "is neither a folder nor a .csv index", s, "give a folder of videos or a Sound-of-Pixels index CSV"
            )
    return items
