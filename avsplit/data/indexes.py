"""Indexes of public datasets of YouTube solo performances (Solos, MUSIC, MUSIC-21).

An index is a list of :class:`IndexEntry`: a category (instrument), a YouTube video id and
optionally a segment ``[start, end]`` in seconds. Index files are JSON, in one of two layouts:

- MUSIC / MUSIC-21 (``MUSIC_solo_videos.json``, ``MUSIC21_solo_videos.json``)::

      {"videos": {"accordion": ["<youtube id>", ...], "acoustic_guitar": [...], ...}}

- Solos (``solos_ids.json`` of the ``solos`` package): the same mapping without ``"videos"``::

      {"Bassoon": ["<youtube id>", ...], "Cello": [...], ...}

Each entry of a category's list is either an id string or an object
``{"id": "<youtube id>", "segment": [start_s, end_s]}``: the video is then trimmed to that segment.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from avsplit.errors import ConfigError

DATASETS = ("solos", "music")

# YouTube ids are 11 characters of [A-Za-z0-9_-]; a little slack for other id schemes, none for
# anything that could name another folder.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")

MUSIC_INDEX_HINT = ("download MUSIC_solo_videos.json (or MUSIC21_solo_videos.json) from "
                    "https://github.com/roudimit/MUSIC_dataset and give it with --index FILE")


@dataclass(frozen=True)
class IndexEntry:
    """One video of a dataset index."""

    category: str
    """Folder name of the category (instrument), safe for any file system."""
    video_id: str
    segment: tuple[float, float] | None = None
    """``(start, end)`` in seconds, or None for the whole video."""

    @property
    def key(self) -> str:
        """``<category>/<id>``: the entry's name in the manifest and in messages."""
        return f"{self.category}/{self.video_id}"

    @property
    def url(self) -> str:
        return f"https://www.youtube.com/watch?v={self.video_id}"


def category_folder(name: str) -> str:
    """A category name as a folder name: spaces and other unsafe characters become ``_``."""
    folder = _UNSAFE.sub("_", str(name).strip()).strip("._")
    return folder or "unnamed"


def _segment(value, where: str, path: Path) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: segment must be [start, end] in seconds, got {value!r}", path) from None
    if not 0 <= start < end:
        raise ConfigError(f"{where}: segment [{start}, {end}] must have 0 <= start < end", path)
    return start, end


def _entry(category: str, item, where: str, path: Path) -> IndexEntry:
    segment = None
    if isinstance(item, dict):
        video_id = item.get("id")
        if item.get("segment") is not None:
            segment = _segment(item["segment"], where, path)
    else:
        video_id = item
    if not isinstance(video_id, str) or not _ID.match(video_id):
        raise ConfigError(f"{where}: {video_id!r} is not a YouTube video id", path,
                          "give ids as strings of letters, digits, _ and -")
    return IndexEntry(category_folder(category), video_id, segment)


def parse_index(data, path: Path) -> list[IndexEntry]:
    """Entries of an index already read from JSON (see the module docstring for the layouts)."""
    if isinstance(data, dict) and "videos" in data:
        data = data["videos"]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError('is not a dataset index: expected {"videos": {"<category>": ["<id>", ...]}} '
                          'or {"<category>": ["<id>", ...]}', path)
    entries: dict[str, IndexEntry] = {}
    for category, items in data.items():
        for k, item in enumerate(items):
            entry = _entry(category, item, f"{category}[{k}]", path)
            known = entries.setdefault(entry.key, entry)
            if known != entry:
                raise ConfigError(f"lists {entry.key} twice with different segments", path,
                                  "keep one segment per video and category")
    if not entries:
        raise ConfigError("lists no videos", path)
    return list(entries.values())


def load_index(path: str | Path) -> list[IndexEntry]:
    """Read an index JSON file (MUSIC, MUSIC-21 or Solos layout)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no such index file", path, "check the --index path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the index ({exc})", path, "give a JSON index file") from None
    return parse_index(data, path)


def solos_index_file() -> Path:
    """``solos_ids.json`` shipped by the ``solos`` package (installed with ``avsplit[data]``).

    The package is located without importing it (its ``__init__`` pulls in unrelated code).
    """
    spec = importlib.util.find_spec("Solos")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the Solos index needs the 'solos' package",
                          fix="install it with pip install 'avsplit[data]' (or pip install solos), or give its solos_ids.json with --index FILE")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "json_files" / "solos_ids.json"
        if path.is_file():
            return path
    raise ConfigError("the installed 'solos' package has no json_files/solos_ids.json",
                      fix="reinstall it with pip install --force-reinstall solos, or give an index with --index FILE")


def dataset_index(dataset: str, index: str | Path | None = None) -> list[IndexEntry]:
    """The entries of ``dataset`` (``solos`` or ``music``), from ``index`` when given."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}", fix=f"use one of {', '.join(DATASETS)}")
    if index is not None:
        return load_index(index)
    if dataset == "music":
        raise ConfigError("the MUSIC index is not shipped by any package", fix=MUSIC_INDEX_HINT)
    return load_index(solos_index_file())
