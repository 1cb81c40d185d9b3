"""Videos through the engine, one job each: a video's regions (given, or found on its discovery
windows), then its windows in batches (the windows of several videos in flight share a batch), the
stems of each of its outputs joined as they come. The messages come from
:mod:`avsplit.inference.loader`; ``separate`` on files (:mod:`.separate`) and on arrays
(:mod:`.arrays`) both run their videos here, with writers to files or to memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from avsplit.dsp import fullband
from avsplit.errors import AvsplitError
from avsplit.inference.discovery import Discovery, discover, discovery_picks, find_regions
from avsplit.inference.engine import Heard, Seen, SeparationEngine
from avsplit.inference.loader import VideoEnd, VideoMessage, VideoStart, VideoWindow
from avsplit.inference.regions import Region, box_regions, grid_regions
from avsplit.inference.stems import StemJoiner

Result = TypeVar("Result")


@dataclass
class RegionSpec:
    """How to get a video's regions: discovered (``num_sources`` or automatic), a grid, or boxes."""

    num_sources: int | None = None
    grid: tuple[int, int] | None = None
    boxes: Sequence[Sequence[float]] | None = None
    zoom: bool = False
    """Each source's vector from its frames zoomed onto its region's box (:mod:`avsplit.inference.zoom`)."""

    @property
    def method(self) -> str:
        return "box" if self.boxes else ("grid" if self.grid else "cluster")


@dataclass
class Output:
    """One output of a video: its stems, made on ``target`` (:class:`~avsplit.dsp.fullband.OutputStft`)."""

    target: fullband.OutputStft
    stems: StemJoiner


@dataclass
class VideoJob:
    """A video being separated: its sources' ``regions`` and its ``outputs`` (one per
    :attr:`VideoWindow.originals`); ``known``: the model's view of windows already analysed while
    finding the sources (by their start sample), used once; ``discovery``: that analysis (None when
    the regions were given)."""

    regions: list[Region]
    outputs: list[Output]
    discovery: Discovery | None = None
    known: dict[int, tuple[Heard, Seen]] = field(default_factory=dict)
    zoom_size: tuple[int, int] | None = None
    """The video's size ``(W, H)`` when its sources are seen zoomed onto their boxes (``RegionSpec.zoom``)."""

    def abort(self) -> None:
        for out in self.outputs:
            out.stems.abort()


def start_job(engine: SeparationEngine, msg: VideoStart, spec: RegionSpec, path: Path | str) -> VideoJob:
    """A video's job with its regions (given, or found on its discovery windows), its outputs not yet
    made (the caller's: writers to files or to memory)."""
    video_size = (msg.info.width, msg.info.height)
    zoom_size = video_size if spec.zoom else None
    if spec.boxes:
        return VideoJob(box_regions(spec.boxes, engine.grid_shape(msg.frame_size), video_size), [], zoom_size=zoom_size)
    if spec.grid:
        grid_shape = engine.grid_shape(msg.frame_size)
        return VideoJob(grid_regions(spec.grid[0], spec.grid[1], grid_shape, msg.frame_size, video_size), [],
                        zoom_size=zoom_size)
    audio, frames = msg.discovery
    found = discover(engine, audio, frames, video_size, path)
    known = {msg.windows[i].start: (found.heard[w : w + 1], found.seen[w : w + 1])
             for w, i in enumerate(discovery_picks(len(msg.windows)))}
    return VideoJob(find_regions(engine, found, spec.num_sources), [], found, known, zoom_size)


def separate_pending(engine: SeparationEngine, pending: list[VideoWindow], jobs: dict[int, VideoJob]) -> None:
    """Separate the ``pending`` windows, batched by frame shape, into their videos' stems."""
    groups: dict[tuple, list[VideoWindow]] = {}
    for msg in pending:
        groups.setdefault(msg.frames.shape, []).append(msg)
    pending.clear()
    for group in groups.values():
        # windows already analysed while finding the sources (all of them, for a short video) are not
        # analysed again
        todo = [b for b, m in enumerate(group) if m.window.start not in jobs[m.video].known]
        # a zooming job sees each source's own crop, never the whole picture
        looked = [b for b in todo if jobs[group[b].video].zoom_size is None]
        if todo:
            heard = engine.hear(np.stack([group[b].audio for b in todo]))
        if looked:
            seen = engine.see(np.stack([group[b].frames for b in looked]))
        for b, msg in enumerate(group):
            job = jobs[msg.video]
            known = job.known.pop(msg.window.start, None)
            if known is None:
                i = todo.index(b)
                j = looked.index(b) if b in looked else None
                known = (heard[i : i + 1], None if j is None else seen[j : j + 1])
            if job.zoom_size is None:
                vectors = engine.vectors(known[1], job.regions)
            else:
                vectors = engine.zoomed_vectors(msg.frames[None], [r.box for r in job.regions], job.zoom_size)
            masks = engine.masks(known[0], vectors)
            for out, original in zip(job.outputs, msg.originals):
                est = engine.separate(known[0], masks, original[None], out.target)[0]  # (R, C, S)
                out.stems.add(msg.window.index, est, original)


def run_jobs(engine: SeparationEngine, messages: Iterable[VideoMessage], start: Callable[[VideoStart], VideoJob],
             finish: Callable[[int, VideoJob], Result]) -> Iterator[tuple[int, Result | None, AvsplitError | None]]:
    """Separate the videos whose ``messages`` come in; yields ``(video, result, None)`` as each ends, or
    ``(video, None, error)`` as soon as it fails (its outputs are aborted; the others go on).

    ``start`` makes a video's job from its :class:`VideoStart`; ``finish`` closes a job whose windows
    are all separated and gives its result. Windows go through the engine ``engine.batch`` at a time.
    """
    jobs: dict[int, VideoJob] = {}
    failed: set[int] = set()
    pending: list[VideoWindow] = []
    try:
        for msg in messages:
            vid = msg.video
            if vid in failed:
                continue
            try:
                if isinstance(msg, VideoStart):
                    jobs[vid] = start(msg)
                elif isinstance(msg, VideoWindow):
                    pending.append(msg)
                    if len(pending) >= engine.batch:
                        separate_pending(engine, pending, jobs)
                elif isinstance(msg, VideoEnd):
                    separate_pending(engine, pending, jobs)
                    result = finish(vid, jobs[vid])
                    del jobs[vid]
                    yield vid, result, None
                else:
                    raise AvsplitError(msg.message)
            except AvsplitError as exc:
                pending[:] = [m for m in pending if m.video != vid]
                failed.add(vid)
                job = jobs.pop(vid, None)
                if job is not None:
                    job.abort()
                yield vid, None, exc
    finally:
        for job in jobs.values():
            job.abort()
