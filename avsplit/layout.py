"""The output layout, a stable contract (DESIGN.md, README "Output layout"): where each command writes,
which finished outputs a run keeps (without ``--overwrite``), which inputs of a batch clash by name,
the ``sources.json`` record of a separated video, and the checks of the output folder.

- ``separate``: ``OUT/<stem>/source-<k>.<fmt>``, ``residual.<fmt>`` and ``sources.json``, written
  last: a folder holding it is finished.
- ``separate --mix A B``: ``OUT/<A>+<B>/mixture.<fmt>``, ``<A>.<fmt>``, ``<B>.<fmt>``.
- ``localize``: ``OUT/<stem>.mp4`` and, with ``--maps``, ``OUT/<stem>.npz``.

Writing the files themselves (atomic renames, stale temporaries) is :mod:`avsplit.files`' business.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, clean_stale_temporaries, ensure_dir

#: The record of a separated video; written last, so its presence marks the folder finished.
SOURCES_JSON = "sources.json"


# ------------------------------------------------------------------------------ the output folder


def check_output_dir(path: str | Path) -> bool:
    """Raise :class:`OutputError` unless ``path`` is (or can be created as) a writable folder; it is
    not created here. Returns whether it does not exist yet (the caller creates it on first write)."""
    path = Path(path)
    if path.exists():
        ensure_dir(path)
        return False
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError("cannot create folder: a file is in the way", path, "choose another output folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create folder ({parent} is not writable)", path, "choose a writable output folder")
    return True


@contextlib.contextmanager
def output_folder(out: str | Path) -> Iterator[Path]:
    """The checked output folder of a batch: stale temporaries of an interrupted run are removed first,
    and a folder made for this batch is removed again on the way out if nothing was written into it."""
    out = Path(out)
    created = check_output_dir(out)
    clean_stale_temporaries(out)
    try:
        yield out
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only an empty folder goes


class BatchNames:
    """The inputs of one batch by file stem: a second input of a stem would write the first one's outputs.

    ``command`` names the command in the error's fix (``separate``, ``localize``).
    """

    def __init__(self, command: str):
        self.command = command
        self._first: dict[str, Path] = {}

    def clash(self, video: Path, target: Path) -> AvsplitError | None:
        """None for the first input of its stem, else the one-line error that refuses ``video`` (whose
        output ``target`` the first one writes)."""
        first = self._first.setdefault(video.stem, video)
        if first == video:
            return None
        return AvsplitError(f"has the same name as {first} in this batch (both would write {target})", video,
                            f"{self.command} it into another -o folder, or rename it")


# ------------------------------------------------------------------------------ separate


def separate_folder(out: Path, video: Path) -> Path:
    """``OUT/<stem>``: the folder of one separated video."""
    return out / Path(video).stem


def source_names(count: int, fmt: str) -> list[str]:
    """The track files of ``count`` sources, left to right: ``source-1.<fmt>`` ..."""
    return [f"source-{k + 1}.{fmt}" for k in range(count)]


def residual_name(fmt: str) -> str:
    """The track of what no source took: the mixture minus the sum of the sources."""
    return f"residual.{fmt}"


def plan_separate(paths: Sequence[Path], out: Path, overwrite: bool) -> Iterator[tuple[Path, str | None]]:
    """Each input with what stops it: ``None`` (to separate), ``"skip"`` (its folder is finished and not
    ``overwrite``) or the error line of a name clash (two inputs of one stem would write one folder)."""
    names = BatchNames("separate")
    for p in map(Path, paths):
        folder = separate_folder(out, p)
        clash = names.clash(p, folder)
        if clash is not None:
            yield p, str(clash)
        elif (folder / SOURCES_JSON).exists() and not overwrite:
            yield p, "skip"
        else:
            yield p, None


@dataclass(frozen=True)
class SourceRecord:
    """What ``sources.json`` says of a separated video besides its sources."""

    video: Path
    method: str
    """``cluster``, ``grid`` or ``box``: how the regions were found."""
    sample_rate: int
    channels: int
    model_sample_rate: int
    duration: float
    weights: str
    fmt: str


def write_sources(folder: Path, record: SourceRecord, regions: Sequence) -> list[dict]:
    """Write ``folder/sources.json`` for the sources of ``regions`` (each with ``box`` ``[x0, y0, x1, y1]``
    in video pixels and ``confidence``), in track order; returns its ``sources`` list."""
    names = source_names(len(regions), record.fmt)
    sources = [{"index": k + 1, "file": names[k], "box": [round(v, 1) for v in r.box],
                "confidence": round(r.confidence, 4)} for k, r in enumerate(regions)]
    meta = {"video": str(record.video), "method": record.method, "sample_rate": record.sample_rate,
            "channels": record.channels, "model_sample_rate": record.model_sample_rate,
            "duration": record.duration, "weights": record.weights, "residual": residual_name(record.fmt),
            "sources": sources}
    with atomic_path(folder / SOURCES_JSON) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, allow_nan=False))  # never invalid JSON (NaN)
    return sources


# ------------------------------------------------------------------------------ separate --mix


@dataclass(frozen=True)
class MixOutputs:
    """Where ``separate --mix`` writes: ``OUT/<A>+<B>/`` with the mixture and one track per input."""

    folder: Path
    stems: list[str]
    fmt: str

    @property
    def mixture(self) -> Path:
        return self.folder / f"mixture.{self.fmt}"

    @property
    def tracks(self) -> list[Path]:
        """One per input, in the inputs' order: ``<stem>.<fmt>``."""
        return [self.folder / f"{s}.{self.fmt}" for s in self.stems]

    def finished(self) -> bool:
        return self.mixture.exists() and all(p.exists() for p in self.tracks)


def mix_outputs(paths: Sequence[Path], out: Path, fmt: str) -> MixOutputs:
    """The outputs of mixing ``paths``; their stems must differ (they name the tracks)."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ConfigError("the --mix inputs need distinct file names (their stems name the outputs)")
    return MixOutputs(out / "+".join(stems), stems, fmt)


# ------------------------------------------------------------------------------ localize


@dataclass(frozen=True)
class LocalizeOutputs:
    """``OUT/<stem>.mp4`` (the overlay) and ``OUT/<stem>.npz`` (the raw maps, with ``--maps``)."""

    video: Path
    maps: Path
    with_maps: bool

    @property
    def files(self) -> list[Path]:
        return [self.video] + ([self.maps] if self.with_maps else [])

    def finished(self) -> bool:
        return all(p.exists() for p in self.files)


def localize_outputs(video: Path, out: Path, maps: bool) -> LocalizeOutputs:
    stem = Path(video).stem
    return LocalizeOutputs(out / f"{stem}.mp4", out / f"{stem}.npz", maps)


def plan_localize(video: Path, out: Path, maps: bool, overwrite: bool) -> tuple[LocalizeOutputs, bool]:
    """The outputs of localizing ``video`` and whether they are finished and kept (not ``overwrite``).

    Raises :class:`AvsplitError` where a folder stands in an output's place, or where an output would
    replace the input.
    """
    outputs = localize_outputs(video, out, maps)
    for target in outputs.files:
        if target.is_dir():
            raise AvsplitError("is a folder where the output file should go", target, "remove or rename it, or use another -o")
    if not overwrite and outputs.finished():
        return outputs, True
    with contextlib.suppress(OSError):
        if outputs.video.resolve() == video.resolve() or outputs.maps.resolve() == video.resolve():
            raise AvsplitError("the output would replace the input", video, "choose another output folder")
    return outputs, False
