"""Separation with a trained model: ``separate`` (sources found in one video) and ``separate --mix``.

Long inputs are cut into overlapping windows of the model's clip length
(:mod:`avsplit.dsp.chunking`,
:mod:`avsplit.inference.windows`); frames for a window come from inside that window; audio and frames are
streamed, so memory is bounded by the window, not by the video's length.

Finding the sources of one video: the appearance net's per-pixel features are standardised
over the frame; pixels that stand out (objects rather than background) are clustered on their
features and position into groups (k chosen automatically unless given, by checking that the
groups' masks differ); each group is a source, whose mask in every window comes from its pooled
features (:mod:`avsplit.inference.discovery`). ``--grid`` and ``--box`` give the regions directly
(:mod:`avsplit.inference.regions`).

The model listens at its own rate; the tracks are made at the output rate (the input's own by
default) from the original sound of every channel, read window by window alongside the model's
input, with the model's masks mapped onto its STFT (:mod:`avsplit.dsp.fullband`), and written by
:mod:`avsplit.inference.stems`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from avsplit import io as media
from avsplit.console import warn_line
from avsplit.dsp import fullband
from avsplit.dsp.chunking import Window
from avsplit.errors import AvsplitError
from avsplit.files import ensure_dir
from avsplit.inference.discovery import discovery_picks, find_regions
from avsplit.inference.engine import SeparationEngine, region_vectors
from avsplit.inference.loader import VideoEnd, VideoStart, VideoWindow, VideoWindowSource, video_loader
from avsplit.inference.regions import Region, box_regions, grid_regions
from avsplit.inference.stems import StemJoiner, StreamingWavWriter
from avsplit.inference.windows import WindowStream
from avsplit.layout import (SourceRecord, mix_outputs, plan_separate, residual_name, separate_folder, source_names,
                            write_sources)



@dataclass
class SeparateResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False


def _stream_outputs(engine: SeparationEngine, stream: WindowStream, vectors_fn, stems: StemJoiner, audio_fn=None,
                    frames_fn=None, original_fn=None) -> None:
    """Separate every window of ``stream`` and stream the cross-faded results into ``stems``.

    ``audio_fn``/``frames_fn``/``original_fn`` (default: ``stream``'s own) give each window's
    model-rate mixture, frames and original sound (see :meth:`WindowStream.original_in_order`)."""
    batch: list[tuple[Window, np.ndarray, np.ndarray, np.ndarray]] = []

    def flush():
        vectors = vectors_fn([b[2] for b in batch])
        spec, warped, feats = engine.analyse(np.stack([b[1] for b in batch]))
        est = engine.separate(spec, warped, feats, vectors, np.stack([b[3] for b in batch]), stream.target)
        for (win, _, _, original), e in zip(batch, est):  # e: (N, C, S)
            stems.add(win.index, e, original)
        batch.clear()

    if audio_fn is None:
        items = stream.iterate()
        originals = stream.original_in_order()
    else:
        items = zip(stream.windows, audio_fn(), frames_fn())
        originals = original_fn()
    for (win, audio, frames), original in zip(items, originals):
        batch.append((win, audio, frames, original))
        if len(batch) >= engine.batch:
            flush()
    if batch:
        flush()


@dataclass
class RegionSpec:
    """How to get a video's regions: discovered (``num_sources`` or automatic), a grid, or boxes."""

    num_sources: int | None = None
    grid: tuple[int, int] | None = None
    boxes: Sequence[Sequence[float]] | None = None

    @property
    def method(self) -> str:
        return "box" if self.boxes else ("grid" if self.grid else "cluster")


@dataclass
class _VideoJob:
    path: Path
    folder: Path
    info: media.MediaInfo
    regions: list[Region]
    stems: StemJoiner
    target: fullband.OutputStft
    names: list[str]
    known: dict = field(default_factory=dict)
    """Raw visual features, STFT and audio features of windows already analysed (by their start sample)."""

    def abort(self) -> None:
        self.stems.abort()


def _separate_windows(engine: SeparationEngine, pending: list[VideoWindow], jobs_by_id: dict[int, _VideoJob]) -> None:
    """Separate the ``pending`` windows, batched by frame shape, into their videos' stems."""
    groups: dict[tuple, list[VideoWindow]] = {}
    for msg in pending:
        groups.setdefault(msg.frames.shape, []).append(msg)
    pending.clear()
    for group in groups.values():
        # windows already analysed while finding the sources (all of them, for a short video) are not
        # analysed again
        todo_idx = [b for b, m in enumerate(group) if m.window.start not in jobs_by_id[m.video].known]
        if todo_idx:
            spec_new, warped_new, feats_new = engine.analyse(np.stack([group[b].audio for b in todo_idx]))
            raw_new = engine.visual(np.stack([group[b].frames for b in todo_idx]))
        for b, msg in enumerate(group):
            job = jobs_by_id[msg.video]
            known = job.known.pop(msg.window.start, None)
            if known is not None:
                raw_b, spec_b, warped_b, feats_b = known
            else:
                i = todo_idx.index(b)
                raw_b, spec_b, warped_b, feats_b = (raw_new[i : i + 1], spec_new[i : i + 1], warped_new[i : i + 1],
                                                    feats_new[i : i + 1])
            vectors = region_vectors(engine.model, raw_b, job.regions)
            est = engine.separate(spec_b, warped_b, feats_b, vectors, msg.original[None], job.target)[0]  # (R, C, S)
            job.stems.add(msg.window.index, est, msg.original)


def _start_job(engine: SeparationEngine, msg: VideoStart, path: Path, out: Path, regions: RegionSpec, fmt: str) -> _VideoJob:
    """A video's regions (given, or found on its discovery windows) and its track writers."""
    info = msg.info
    video_size = (info.width, info.height)
    fw, fh = msg.frame_size
    grid_shape = engine.grid_shape((fw, fh))
    if regions.boxes:
        found = box_regions(regions.boxes, grid_shape, video_size)
    elif regions.grid:
        found = grid_regions(regions.grid[0], regions.grid[1], grid_shape, (fw, fh), video_size)
    known: dict[int, torch.Tensor] = {}
    if not (regions.boxes or regions.grid):
        audio, frames = msg.discovery
        seen: dict = {}
        found = find_regions(engine, audio, frames, video_size, regions.num_sources, path, features=seen)
        for i, w in zip(discovery_picks(len(msg.windows)), range(len(seen["raw"]))):
            known[msg.windows[i].start] = (seen["raw"][w : w + 1], seen["spec"][w : w + 1], seen["warped"][w : w + 1],
                                           seen["audio"][w : w + 1])
    folder = ensure_dir(separate_folder(out, path))
    names = source_names(len(found), fmt)
    target = msg.target
    writers = [StreamingWavWriter(folder / n, target.sample_rate, fmt) for n in names]
    residual = StreamingWavWriter(folder / residual_name(fmt), target.sample_rate, fmt)
    stems = StemJoiner(msg.out_total, target.clip_samples, msg.out_windows, writers, residual=residual)
    return _VideoJob(path, folder, info, found, stems, target, names, known)


def _finish_job(job: _VideoJob, method: str, model_rate: int, fmt: str, weights_name: str) -> SeparateResult:
    """Close a video's tracks and write its ``sources.json`` (last: it marks the folder complete)."""
    if not all(math.isfinite(r.confidence) and all(map(math.isfinite, r.box)) for r in job.regions):
        raise AvsplitError("the model gave non-finite source scores (NaN)", job.path,
                           "check the weights: they may come from a diverged training run")
    job.stems.close()
    channels = job.stems.writers[0].channels if job.stems.writers else 1
    record = SourceRecord(job.path, method, job.target.sample_rate, channels, model_rate, job.info.duration,
                          weights_name, fmt)
    sources = write_sources(job.folder, record, job.regions)
    files = [job.folder / n for n in job.names] + [job.folder / residual_name(fmt)]
    return SeparateResult(job.folder, files, sources)


def separate_videos(
    paths: Sequence[Path],
    out: Path,
    engine: SeparationEngine,
    *,
    regions: RegionSpec = RegionSpec(),
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    mono: bool = False,
    overwrite: bool = False,
    jobs: int = 1,
    weights_name: str = "",
) -> Iterator[tuple[Path, SeparateResult | None, str | None]]:
    """Separate many videos; yields ``(path, result, None)`` or ``(path, None, error line)`` as each ends.

    Decoding runs in ``jobs`` worker processes (in-process for ``jobs`` <= 1); windows of all the
    videos in flight are batched together through the model (``engine.batch`` per forward pass),
    so many short videos keep a GPU busy. Existing outputs are skipped unless ``overwrite``.
    Tracks are written at ``sample_rate`` (default: each video's own) with the video's channels
    (one, mixed down, when ``mono``): the model's masks applied to the original sound there.
    """
    cfg = engine.model.config
    todo = []
    for p, stop in plan_separate(paths, out, overwrite):
        if stop is None:
            todo.append(p)
        elif stop == "skip":
            yield p, SeparateResult(separate_folder(out, p), skipped=True), None
        else:
            yield p, None, stop
    if not todo:
        return
    source = VideoWindowSource(todo, cfg, overlap, discover=regions.method == "cluster", sample_rate=sample_rate, mono=mono)
    jobs_by_id: dict[int, _VideoJob] = {}
    failed: set[int] = set()
    pending: list[VideoWindow] = []
    try:
        for msg in video_loader(source, jobs):
            vid = msg.video
            if vid in failed:
                continue
            try:
                if isinstance(msg, VideoStart):
                    jobs_by_id[vid] = _start_job(engine, msg, todo[vid], out, regions, fmt)
                elif isinstance(msg, VideoWindow):
                    pending.append(msg)
                    if len(pending) >= engine.batch:
                        _separate_windows(engine, pending, jobs_by_id)
                elif isinstance(msg, VideoEnd):
                    _separate_windows(engine, pending, jobs_by_id)
                    result = _finish_job(jobs_by_id[vid], regions.method, cfg.audio.sample_rate, fmt, weights_name)
                    del jobs_by_id[vid]
                    yield todo[vid], result, None
                else:
                    raise AvsplitError(msg.message)
            except AvsplitError as exc:
                pending[:] = [m for m in pending if m.video != vid]
                failed.add(vid)
                job = jobs_by_id.pop(vid, None)
                if job is not None:
                    job.abort()
                yield todo[vid], None, str(exc)
    finally:
        for job in jobs_by_id.values():
            job.abort()


def separate_video(
    path: Path,
    out: Path,
    engine: SeparationEngine,
    *,
    num_sources: int | None = None,
    grid: tuple[int, int] | None = None,
    boxes: Sequence[Sequence[float]] | None = None,
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    mono: bool = False,
    overwrite: bool = False,
    weights_name: str = "",
) -> SeparateResult:
    """Write ``OUT/<stem>/source-<k>.<fmt>``, ``residual.<fmt>`` and ``sources.json`` for one video."""
    spec = RegionSpec(num_sources, grid, boxes)
    for _, result, error in separate_videos([Path(path)], out, engine, regions=spec, overlap=overlap, fmt=fmt,
                                            sample_rate=sample_rate, mono=mono, overwrite=overwrite,
                                            weights_name=weights_name):
        if error:
            raise AvsplitError(error)
        return result  # type: ignore[return-value]
    raise AvsplitError("nothing was separated", Path(path))


def separate_mix(
    paths: Sequence[Path],
    out: Path,
    engine: SeparationEngine,
    *,
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    mono: bool = False,
    overwrite: bool = False,
) -> SeparateResult:
    """Mix the sound of solo videos and separate each back with its own frames.

    Writes ``OUT/<A>+<B>/mixture.<fmt>`` and ``<A>.<fmt>``, ``<B>.<fmt>``. The mixture is the
    average of the inputs' sound tracks (so it cannot clip; each separated track estimates its
    input at 1/N of its level) and lasts as long as the shortest input. Tracks are written at
    ``sample_rate`` (default: the highest of the inputs' rates) with the inputs' channels (a mono
    input is heard in every channel; inputs with different multi-channel layouts, or ``mono``, are
    mixed down to one).
    """
    paths = [Path(p) for p in paths]
    outputs = mix_outputs(paths, out, fmt)
    if not overwrite and outputs.finished():
        return SeparateResult(outputs.folder, skipped=True)
    streams = [WindowStream(p, engine.model, overlap) for p in paths]
    shortest = min(streams, key=lambda s: s.total)
    layouts = {s.info.audio_channels or 1 for s in streams} - {1}
    if len(layouts) > 1 and not mono:
        warn_line(f"the --mix inputs have different channel layouts ({sorted(layouts)} channels); mixing down to mono")
    out_rate = sample_rate or max(s.info.audio_rate or s.cfg.audio.sample_rate for s in streams)
    for s in streams:
        s.total, s.windows = shortest.total, shortest.windows
        s.set_output(out_rate, mono or len(layouts) > 1)
    ensure_dir(outputs.folder)
    writers = [StreamingWavWriter(p, out_rate, fmt) for p in outputs.tracks]
    mixture = StreamingWavWriter(outputs.mixture, out_rate, fmt)
    joined = StemJoiner(shortest.out_total, shortest.target.clip_samples, shortest.out_windows, writers, mixture=mixture)

    def audio_fn():
        for pieces in zip(*(s.audio_in_order(shortest.windows) for s in streams)):
            yield np.mean(pieces, axis=0)

    def original_fn():
        for pieces in zip(*(s.original_in_order() for s in streams)):
            channels = max(p.shape[0] for p in pieces)
            if any(p.shape[0] not in (1, channels) for p in pieces):
                raise AvsplitError("the --mix inputs decode to different channel layouts", None,
                                   "mix them with --channels mono")
            yield np.mean([np.broadcast_to(p, (channels, p.shape[1])) for p in pieces], axis=0)

    def frames_fn():
        per_source = [s.frames_for([s.frame_times(w) for w in shortest.windows]) for s in streams]
        yield from zip(*per_source)  # per window: one (F, H, W, 3) array per source (sizes may differ)

    def vectors_fn(frames_list):
        per_source = []
        for n in range(len(streams)):
            raw = engine.visual(np.stack([frames[n] for frames in frames_list]))  # (B, K, h, w)
            per_source.append(engine.model.pool(raw))
        return torch.stack(per_source, dim=1)  # (B, N, K)

    try:
        _stream_outputs(engine, shortest, vectors_fn, joined, audio_fn, frames_fn, original_fn)
    except BaseException:
        joined.abort()
        raise
    joined.close()
    return SeparateResult(outputs.folder, [outputs.mixture] + outputs.tracks)
