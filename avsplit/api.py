"""The library API. Each CLI command is a thin layer over one function here.

Example::

    from avsplit import api
    api.synth("data/", solos=8, duets=2)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence


def synth(out: str | Path, **options):
    """Generate the synthetic dataset into ``out``; see :func:`avsplit.synth.generate_dataset`."""
    from avsplit.synth import generate_dataset

    return generate_dataset(out, **options)


def data(
    dataset: str,
    out: str | Path,
    *,
    index: str | Path | None = None,
    downloader: str = "yt-dlp",
    jobs: int = 1,
    fps: float = 25.0,
    short_side: int | None = 360,
    yt_format: str | None = None,
    categories: Sequence[str] | None = None,
    limit: int | None = None,
    retry_unavailable: bool = False,
):
    """Download ``dataset`` (``solos`` or ``music``) into ``OUT/<category>/<id>.mp4``.

    The index is ``index`` (a MUSIC / MUSIC-21 / Solos JSON file, see
    :mod:`avsplit.data.indexes`) or, for ``solos``, the one the ``solos`` package ships.
    ``categories`` keeps only those categories, ``limit`` the first N videos of each. Returns a
    :class:`avsplit.data.download.DataSummary`; see :func:`avsplit.data.download.fetch_dataset`.
    """
    from avsplit.data.download import DEFAULT_FORMAT, fetch_dataset
    from avsplit.data.indexes import category_folder, dataset_index
    from avsplit.errors import ConfigError

    entries = dataset_index(dataset, index)
    if categories:
        wanted = {category_folder(c) for c in categories}
        unknown = wanted - {e.category for e in entries}
        if unknown:
            known = sorted({e.category for e in entries})
            raise ConfigError(f"no category {', '.join(sorted(unknown))} in the index", fix=f"use some of {', '.join(known)}")
        entries = [e for e in entries if e.category in wanted]
    if limit is not None:
        if limit < 1:
            raise ConfigError("--limit must be at least 1")
        kept, counts = [], {}
        for entry in entries:
            counts[entry.category] = counts.get(entry.category, 0) + 1
            if counts[entry.category] <= limit:
                kept.append(entry)
        entries = kept
    return fetch_dataset(entries, out, dataset=dataset, downloader=downloader, jobs=jobs, fps=fps, short_side=short_side,
                         yt_format=yt_format or DEFAULT_FORMAT, retry_unavailable=retry_unavailable)


def print_models(as_json: bool = False) -> None:
    """Print the registry of shipped weights on stdout (text readable at 80 columns, or JSON)."""
    from avsplit.models.registry import print_registry

    print_registry(as_json=as_json)


def blend(a: str | Path, b: str | Path, weight: float, out: str | Path) -> Path:
    """Write ``(1 - weight) * A + weight * B`` of two checkpoints of one architecture (names or paths)."""
    from avsplit.models.averaging import blend_checkpoints

    return blend_checkpoints(a, b, weight, out)


def train(
    data: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    preset: str = "small",
    model_overrides: dict | None = None,
    train_overrides: dict | None = None,
    backbone_weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    jobs: int = 1,
    resume: bool = False,
    init: str | Path | None = None,
    motion_overrides: dict | None = None,
):
    """Train a model of ``preset`` (with overrides) on ``data``; see :func:`avsplit.training.train`.

    ``motion_overrides`` (e.g. ``{"flow_backend": "raft", "fusion": "film"}``) change the motion
    pathway of a motion preset; ``init`` (a weights name or path) starts the model from another
    checkpoint wherever the weights fit.
    """
    import dataclasses
    import json

    from avsplit.errors import ConfigError
    from avsplit.models import ModelConfig, preset as model_preset
    from avsplit.models.config import check_flow_backend
    from avsplit.models.registry import resolve_weights
    from avsplit.training import TRAIN_PRESETS, TrainConfig, train as run_training

    model_config = model_preset(preset, **(model_overrides or {}))
    if backbone_weights is not None:
        model_config = model_config.replace(
            appearance=dataclasses.replace(model_config.appearance, backbone_weights=backbone_weights))
    if motion_overrides:
        if model_config.motion is None:
            raise ConfigError(f"preset {preset!r} has no motion pathway", fix="use --preset small-motion or som")
        model_config = model_config.replace(motion=dataclasses.replace(model_config.motion, **motion_overrides))
    if resume and motion_overrides and (Path(out) / "config.json").exists():
        saved = ModelConfig.from_dict(json.loads((Path(out) / "config.json").read_text())["model"])
        check_flow_backend(saved, motion_overrides.get("flow_backend"))
    train_config = dataclasses.replace(TRAIN_PRESETS.get(preset, TrainConfig()), **(train_overrides or {}))
    extend_to = (train_overrides or {}).get("steps") if resume else None
    init_path = resolve_weights(str(init)) if init is not None else None
    return run_training(data, out, val=val, model_config=model_config, train_config=train_config,
                        cache_dir=cache_dir, device=device, jobs=jobs, resume=resume, extend_to=extend_to,
                        init=init_path)


def load_model(weights: str | Path | None = None, device: str | None = None, flow_backend: str | None = None):
    """Resolve ``--weights NAME|PATH`` (None: the shipped default) and load it on ``device``.

    ``flow_backend`` (a user's ``--flow-backend``) must be the one a motion model was trained on.
    Returns ``(model, metadata, path)``.
    """
    from avsplit.models.checkpoint import load_checkpoint
    from avsplit.models.config import check_flow_backend
    from avsplit.models.registry import resolve_weights
    from avsplit.runtime import pick_device

    path = resolve_weights(weights)
    model, meta = load_checkpoint(path, device=pick_device(device))
    check_flow_backend(model.config, flow_backend)
    return model, meta, path


@dataclass
class BatchSummary:
    """Outcome of a command over many inputs."""

    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    """``(path, one-line reason)`` pairs."""
    ignored: list = field(default_factory=list)
    """Files in input folders that are not videos (by extension), e.g. audio-only files."""


@contextmanager
def _video_batch(inputs: Sequence[str | Path], out: str | Path) -> Iterator[tuple[list[Path], BatchSummary]]:
    """The videos of ``inputs`` and a fresh summary, found and checked (with the output folder)
    before torch and the model load; stale temporaries of an interrupted run are removed, and an
    output folder made here is removed again if every input failed (nothing was written)."""
    from avsplit.errors import AvsplitError
    from avsplit.layout import output_folder
    from avsplit.scan import find_videos

    summary = BatchSummary()
    videos = find_videos(inputs, ignored=summary.ignored)
    if not videos:
        raise AvsplitError("no videos found", Path(str(inputs[0])) if inputs else None, "give video files or folders")
    with output_folder(out):
        yield videos, summary


def separate(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    mix: bool = False,
    weights: str | Path | None = None,
    flow_backend: str | None = None,
    device: str | None = None,
    jobs: int = 1,
    sources: int | None = None,
    grid: tuple[int, int] | None = None,
    boxes: Sequence[Sequence[float]] | None = None,
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    channels: str = "input",
    overwrite: bool = False,
    batch: int = 4,
    zoom: bool = False,
) -> BatchSummary:
    """Separate videos into per-source tracks (see :mod:`avsplit.inference`).

    Each input file or folder (searched recursively) is separated into ``OUT/<stem>/``; with
    ``mix``, the inputs are solo videos whose sounds are mixed and separated back into
    ``OUT/<A>+<B>/``. A file that fails gets one error line and the batch goes on. Tracks are
    full band at ``sample_rate`` (default: the input's own) with the input's channels
    (``channels="input"``) or mixed down to one (``"mono"``). ``zoom``: each source seen closer, its
    frames cut around its region (with ``mix``, around where each video's motion follows its sound)
    and scaled up (:mod:`avsplit.inference.zoom`).
    """
    from avsplit.errors import ConfigError

    if fmt not in ("wav", "flac"):
        raise ConfigError(f"unknown format {fmt!r}", fix="use wav or flac")
    _check_separate_options(sources, overlap, channels, sample_rate)
    if mix and not 2 <= len(inputs) <= 4:
        raise ConfigError("--mix takes 2 to 4 solo videos")
    with _video_batch(inputs, out) as (videos, summary):
        _separate_batch(videos, Path(out), summary, mix=mix, weights=weights, flow_backend=flow_backend, device=device,
                        jobs=jobs, sources=sources, grid=grid, boxes=boxes, overlap=overlap, fmt=fmt,
                        sample_rate=sample_rate, mono=channels == "mono", overwrite=overwrite, batch=batch, zoom=zoom)
    return summary


def _check_separate_options(sources: int | None, overlap: float, channels: str, sample_rate: int | None) -> None:
    """Refuse ``separate``'s options out of range (one :class:`ConfigError` line each)."""
    from avsplit.errors import ConfigError

    if sources is not None and not 1 <= sources <= 8:
        raise ConfigError("--sources must be between 1 and 8")
    if not 0 <= overlap < 1:
        raise ConfigError("--overlap must be in [0, 1)")
    if channels not in ("input", "mono"):
        raise ConfigError(f"unknown --channels {channels!r}", fix="use input (the video's own) or mono")
    if sample_rate is not None and not 1000 <= sample_rate <= 384000:
        raise ConfigError(f"--sr {sample_rate} is out of range", fix="give a rate between 1000 and 384000 Hz")


def separate_arrays(audio, sample_rate: int, frames, fps: float, *, weights: str | Path | None = None,
                    flow_backend: str | None = None, device: str | None = None, sources: int | None = None,
                    grid: tuple[int, int] | None = None, boxes: Sequence[Sequence[float]] | None = None,
                    overlap: float = 0.25, out_rate: int | None = None, channels: str = "input", batch: int = 4,
                    zoom: bool = False):
    """Separate a video given as arrays, in memory: sound ``(channels, samples)`` at ``sample_rate`` and
    uint8 RGB frames ``(T, H, W, 3)`` at ``fps`` (options as :func:`separate`'s; ``out_rate``: its ``--sr``).

    Returns an :class:`avsplit.inference.Separated`: ``sources`` float32 ``(N, channels, samples)``
    left to right, ``residual``, ``sample_rate`` and each source's ``regions``. For many videos, load
    the model once: :func:`avsplit.inference.separate_arrays` with a ``SeparationEngine``.
    """
    from avsplit.inference import RegionSpec, SeparationEngine, separate_arrays as separate_in_memory

    _check_separate_options(sources, overlap, channels, out_rate)
    model, _, _ = load_model(weights, device, flow_backend)
    engine = SeparationEngine(model, next(model.parameters()).device, batch=batch)
    return separate_in_memory(engine, audio, sample_rate, frames, fps, regions=RegionSpec(sources, grid, boxes, zoom),
                              overlap=overlap, out_rate=out_rate, mono=channels == "mono")


def _separate_batch(videos, out: Path, summary: BatchSummary, *, mix, weights, flow_backend, device, jobs, sources, grid,
                    boxes, overlap, fmt, sample_rate, mono, overwrite, batch, zoom) -> None:
    """The work of :func:`separate` once its inputs are known to exist."""
    from avsplit import io as media
    from avsplit.console import error_line, make_progress
    from avsplit.inference import RegionSpec, SeparationEngine, separate_mix, separate_videos

    model, meta, path = load_model(weights, device, flow_backend)
    engine = SeparationEngine(model, next(model.parameters()).device, batch=batch)
    if mix:
        from avsplit.localize.sounding import sounding_box

        with media.isolated_decoding():
            result = separate_mix(videos, out, engine, overlap=overlap, fmt=fmt, sample_rate=sample_rate, mono=mono,
                                  overwrite=overwrite, zoom_boxes=[sounding_box(v) for v in videos] if zoom else None)
        (summary.skipped if result.skipped else summary.done).append(result.folder)
        return
    spec = RegionSpec(num_sources=sources, grid=grid, boxes=boxes, zoom=zoom)
    with make_progress() as progress, media.isolated_decoding():
        task = progress.add_task("separating", total=len(videos), status="")
        for video, result, error in separate_videos(videos, out, engine, regions=spec, overlap=overlap, fmt=fmt,
                                                    sample_rate=sample_rate, mono=mono, overwrite=overwrite, jobs=jobs,
                                                    weights_name=str(path)):
            if error:
                error_line(error)
                summary.failed.append((video, error))
            else:
                (summary.skipped if result.skipped else summary.done).append(result.folder)
            progress.update(task, advance=1, status=video.name)


def evaluate(
    data: str | Path,
    *,
    weights: str | Path | None = None,
    flow_backend: str | None = None,
    device: str | None = None,
    pairs: int = 32,
    num_mix: int = 2,
    seed: int = 0,
    same_category: bool = False,
    wild: bool = True,
    localization: bool = True,
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    show: bool = True,
    count: str = "auto",
    by_domain: bool = False,
    zoom: bool = False,
):
    """Deterministic mix-and-separate (and in-the-wild, where truth exists) evaluation.

    ``count``: ``auto`` (wild videos split into as many tracks as ``separate`` finds; count accuracy
    reported) or ``truth``. ``by_domain``: print the scores per value of every domain axis (the JSON
    summary always has them).

    Returns ``(items, summary)``; writes the requested JSON/CSV/Markdown files and HTML report.
    """
    from avsplit.evaluation import evaluate as run_evaluation
    from avsplit.evaluation.breakdown import print_count_table, print_domain_table
    from avsplit.evaluation import print_table, write_outputs

    model, meta, path = load_model(weights, device, flow_backend)
    device_t = next(model.parameters()).device
    items, summary = run_evaluation(
        data, model, device_t, pairs=pairs, num_mix=num_mix, seed=seed, same_category=same_category, wild=wild,
        localization=localization, weights_name=str(path), report_dir=Path(report_dir) if report_dir else None,
        count=count, zoom=zoom,
    )
    info = {"weights": str(path), "data": str(data), "seed": seed, "pairs": pairs, "num_mix": num_mix,
            "same_category": same_category, "preset": model.config.preset, "count": count,
            "zoom": zoom}
    if show:
        print_table(summary)
        print_count_table(summary)
        print_domain_table(summary, by_domain)
    write_outputs(items, summary, info, Path(json_path) if json_path else None, Path(csv_path) if csv_path else None,
                  Path(markdown_path) if markdown_path else None)
    return items, summary


def localize(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    method: str = "model",
    weights: str | Path | None = None,
    flow_backend: str | None = None,
    device: str | None = None,
    maps: bool = False,
    per_source: bool = False,
    alpha: float = 0.5,
    colormap: str = "inferno",
    hop: float = 1.0,
    map_rate: float | None = None,
    overwrite: bool = False,
    batch: int = 2,
) -> BatchSummary:
    """Heatmap videos of where the sound comes from (see :mod:`avsplit.localize`).

    For each input file or folder (searched recursively) writes ``OUT/<stem>.mp4``: the original
    video (size, frame rate, sound) with a colour overlay; with ``maps`` also ``OUT/<stem>.npz``.
    ``method``: ``model`` (the pixel-wise masks of ``weights``) or ``onsets`` (no weights: what
    moves in time with the sound). Existing outputs are skipped unless ``overwrite``; a file that
    fails gets one error line and the batch goes on.
    """
    with _video_batch(inputs, out) as (videos, summary):
        _localize_batch(videos, Path(out), summary, method=method, weights=weights, flow_backend=flow_backend,
                        device=device, maps=maps, per_source=per_source, alpha=alpha, colormap=colormap, hop=hop,
                        map_rate=map_rate, overwrite=overwrite, batch=batch)
    return summary


def _localize_batch(videos, out: Path, summary: BatchSummary, *, method, weights, flow_backend, device, maps, per_source,
                    alpha, colormap, hop, map_rate, overwrite, batch) -> None:
    """The work of :func:`localize` once its inputs are known to exist."""
    from avsplit import io as media
    from avsplit.console import error_line, make_progress
    from avsplit.errors import AvsplitError, OutputError
    from avsplit.layout import BatchNames, localize_outputs
    from avsplit.localize import ModelMapSettings, check_options, localize_video
    from avsplit.localize.onsets import OnsetSettings

    check_options(method, per_source, colormap, alpha, map_rate)
    settings = ModelMapSettings(hop=hop, batch=batch, **({"map_rate": map_rate} if map_rate else {}))
    onset_settings = OnsetSettings(**({"map_rate": map_rate} if map_rate else {}))
    engine = None
    if method == "model":
        from avsplit.inference import SeparationEngine

        model, _, _ = load_model(weights, device, flow_backend)
        engine = SeparationEngine(model, next(model.parameters()).device, batch=batch)
    with make_progress() as progress, media.isolated_decoding():
        task = progress.add_task("localizing", total=len(videos), status="")
        names = BatchNames("localize")
        for video in videos:
            progress.update(task, status=video.name)
            try:
                clash = names.clash(video, localize_outputs(video, out, maps).video)
                if clash is not None:
                    raise clash
                result = localize_video(video, out, method=method, engine=engine, maps=maps, per_source=per_source,
                                        alpha=alpha, colormap=colormap, settings=settings,
                                        onset_settings=onset_settings, overwrite=overwrite, progress=progress)
            except OutputError:
                raise  # the output folder is unusable: no point in trying the next file
            except AvsplitError as exc:
                error_line(str(exc))
                summary.failed.append((video, str(exc)))
            else:
                (summary.skipped if result.skipped else summary.done).append(result.files[0])
            progress.advance(task)
