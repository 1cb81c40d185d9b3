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
:mod:`avsplit.inference.stems`. Each video is a job of :mod:`avsplit.inference.jobs`, as in the
in-memory call (:mod:`avsplit.inference.arrays`); here decoded in worker processes and written to files.
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
from avsplit.dsp.chunking import Window
from avsplit.errors import AvsplitError
from avsplit.files import ensure_dir
from avsplit.inference.engine import SeparationEngine
from avsplit.inference.jobs import Output, RegionSpec, VideoJob, run_jobs, start_job
from avsplit.inference.loader import VideoStart, VideoWindowSource, video_loader
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
        heard = engine.hear(np.stack([b[1] for b in batch]))
        est = engine.separate(heard, engine.masks(heard, vectors), np.stack([b[3] for b in batch]), stream.output.target)
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
class _VideoJob(VideoJob):
    path: Path = Path()
    folder: Path = Path()
    info: media.MediaInfo | None = None
    names: list[str] = field(default_factory=list)




def _start_job(engine: SeparationEngine, msg: VideoStart, path: Path, out: Path, regions: RegionSpec, fmt: str) -> _VideoJob:
    """A video's regions (given, or found on its discovery windows) and its track writers."""
    found = start_job(engine, msg, regions, path)
    folder = ensure_dir(separate_folder(out, path))
    names = source_names(len(found.regions), fmt)
    plan = msg.outputs[0]
    writers = [StreamingWavWriter(folder / n, plan.target.sample_rate, fmt) for n in names]
    residual = StreamingWavWriter(folder / residual_name(fmt), plan.target.sample_rate, fmt)
    stems = StemJoiner(plan.total, plan.target.clip_samples, plan.windows, writers, residual=residual)
    return _VideoJob(found.regions, [Output(plan.target, stems)], found.discovery, found.known, found.zoom_size, path,
                     folder, msg.info, names)


def _finish_job(job: _VideoJob, method: str, model_rate: int, fmt: str, weights_name: str) -> SeparateResult:
    """Close a video's tracks and write its ``sources.json`` (last: it marks the folder complete)."""
    if not all(math.isfinite(r.confidence) and all(map(math.isfinite, r.box)) for r in job.regions):
        raise AvsplitError("the model gave non-finite source scores (NaN)", job.path,
                           "check the weights: they may come from a diverged training run")
    output = job.outputs[0]
    output.stems.close()
    channels = output.stems.writers[0].channels if output.stems.writers else 1
    record = SourceRecord(job.path, method, output.target.sample_rate, channels, model_rate, job.info.duration,
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
    for vid, result, error in run_jobs(engine, video_loader(source, jobs),
                                       lambda msg: _start_job(engine, msg, todo[msg.video], out, regions, fmt),
                                       lambda vid, job: _finish_job(job, regions.method, cfg.audio.sample_rate, fmt,
                                                                    weights_name)):
        yield todo[vid], result, None if error is None else str(error)


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
    zoom_boxes: Sequence[Sequence[float] | None] | None = None,
) -> SeparateResult:
    """Mix the sound of solo videos and separate each back with its own frames.

    Writes ``OUT/<A>+<B>/mixture.<fmt>`` and ``<A>.<fmt>``, ``<B>.<fmt>``. The mixture is the
    average of the inputs' sound tracks (so it cannot clip; each separated track estimates its
    input at 1/N of its level) and lasts as long as the shortest input. Tracks are written at
    ``sample_rate`` (default: the highest of the inputs' rates) with the inputs' channels (a mono
    input is heard in every channel; inputs with different multi-channel layouts, or ``mono``, are
    mixed down to one). ``zoom_boxes``: one box (video pixels) or ``None`` per input: that input's
    frames are zoomed onto its box (:mod:`avsplit.inference.zoom`).
    """
    paths = [Path(p) for p in paths]
    boxes = list(zoom_boxes) if zoom_boxes is not None else [None] * len(paths)
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
    plan = shortest.output
    joined = StemJoiner(plan.total, plan.target.clip_samples, plan.windows, writers, mixture=mixture)

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
        # each source pooled over its own whole picture (or its zoomed box): (B, N, K)
        vectors = []
        for n, s in enumerate(streams):
            frames = np.stack([f[n] for f in frames_list])
            vectors.append(engine.vectors(engine.see(frames)) if boxes[n] is None else
                           engine.zoomed_vectors(frames, [boxes[n]], (s.info.width, s.info.height)))
        return torch.cat(vectors, dim=1)

    try:
        _stream_outputs(engine, shortest, vectors_fn, joined, audio_fn, frames_fn, original_fn)
    except BaseException:
        joined.abort()
        raise
    joined.close()
    return SeparateResult(outputs.folder, [outputs.mixture] + outputs.tracks)
