"""The ``avsplit`` command line: thin Typer commands over :mod:`avsplit.api`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from avsplit import __version__
from avsplit.console import configure, console, error_line
from avsplit.errors import AvsplitError

def _flags_show_no_type() -> None:
    """Typer shows every option's type, flags too (``--overwrite <bool>``), which reads as if the flag took
    a value. Flags are shown bare, as in click."""
    from typer import core

    show = getattr(core.TyperOption, "display_type_rich", None)
    if show is None or getattr(show, "_avsplit", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else show(self, ctx)

    display_type_rich._avsplit = True
    core.TyperOption.display_type_rich = display_type_rich


_flags_show_no_type()

app = typer.Typer(
    name="avsplit",
    help="Separate the sound of a video into one track per visible source, and show where each sound comes from.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avsplit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """avsplit: audio-visual source separation learned from unlabeled video."""


QuietOpt = typer.Option(False, "--quiet", "-q", help="Only errors.")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="More detail.")
JobsOpt = typer.Option(1, "--jobs", "-j", min=1, help="Parallel worker processes.")
DeviceOpt = typer.Option(None, "--device", "-d", help="cpu, cuda or cuda:N (default: cuda if available, else cpu).")


def _run(fn, *args, **kwargs):
    """Call an api function; turn an AvsplitError into one error line and exit code 1."""
    try:
        return fn(*args, **kwargs)
    except AvsplitError as exc:
        error_line(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        error_line("interrupted")
        raise typer.Exit(130) from None


def _report_batch(summary, verb: str, out: Path) -> None:
    """One closing line for a batch command (not with -q); exit code 1 when any input failed."""
    from avsplit.console import is_quiet

    if not is_quiet():
        ignored = getattr(summary, "ignored", [])
        kinds = ", ".join(sorted({p.suffix.lower() for p in ignored}))
        extra = f", {len(ignored)} sound-only files passed over ({kinds})" if ignored else ""
        console.print(f"{len(summary.done)} {verb}, {len(summary.skipped)} skipped (outputs exist), "
                      f"{len(summary.failed)} failed{extra}; outputs in {out}")
    if summary.failed:
        raise typer.Exit(1)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the dataset into (created if needed)."),
    solos: int = typer.Option(16, "--solos", min=0, help="Number of solo videos."),
    duets: int = typer.Option(4, "--duets", min=0, help="Number of duet videos (two instruments side by side)."),
    same_kind: float = typer.Option(0.5, "--same-kind", min=0.0, max=1.0, help="Share of duets with two instruments of the same kind."),
    seconds: float = typer.Option(8.0, "--seconds", min=0.5, help="Length of each video."),
    size: str = typer.Option("320x240", "--size", help="Frame size WIDTHxHEIGHT."),
    fps: float = typer.Option(24.0, "--fps", min=1.0, help="Frame rate."),
    sample_rate: int = typer.Option(22050, "--sr", help="Audio sample rate of the videos."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same dataset."),
    soundfont: Optional[list[Path]] = typer.Option(None, "--soundfont", help="General MIDI SoundFont (.sf2/.sf3), repeatable (drawn per source); default: a system one (with --variety full: every one installed), else the built-in synthesizer."),
    distractors: int = typer.Option(0, "--distractors", min=0, help="Silent moving objects per video."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Comma-separated instrument categories (default: all)."),
    renderer: str = typer.Option("auto", "--renderer", help="auto (FluidSynth when available), fluidsynth or additive."),
    sprites: str = typer.Option("auto", "--sprites", help="auto (emoji when the font is installed), emoji or drawn."),
    variety: str = typer.Option("none", "--variety", help="none (fixed look and sound) or full (every axis of docs/domains.md varies: SoundFonts, real recordings, performance, recording chain, frame, background, glyph, motion)."),
    split: str = typer.Option("all", "--split", help="all, train (never the held-out values of docs/domains.md) or foreign (held-out values only); train/foreign imply --variety full."),
    patches: Optional[list[Path]] = typer.Option(None, "--patches", help="With --variety full: a GUS patch set folder (e.g. /usr/share/midi/freepats from Debian's freepats), repeatable: sampled instruments as one more sound bank beside the SoundFonts."),
    makers: Optional[str] = typer.Option(None, "--makers", help="With --variety full: the kinds of sound maker to draw, comma-separated from sf, patch, additive, physical, real (default: all)."),
    glyphs: Optional[str] = typer.Option(None, "--glyphs", help="With --variety full: the glyph styles to draw, comma-separated from emoji, outline, drawn, mono (one-colour ink made from the emoji; default: emoji, outline, drawn)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Regenerate videos that already exist."),
    jobs: int = JobsOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Generate the synthetic audio-visual dataset: solos per category, duets, and ground truth."""
    from avsplit import api

    configure(quiet, verbose)
    w, h = _size(size)
    cats = [c.strip() for c in categories.split(",")] if categories else None
    summary = _run(
        api.synth, out, solos=solos, duets=duets, same_kind=same_kind, seconds=seconds, size=(w, h), fps=fps,
        sample_rate=sample_rate, seed=seed, soundfont=list(soundfont or []) or None, distractors=distractors,
        categories=cats, overwrite=overwrite, jobs=jobs, renderer=renderer, sprites=sprites, variety=variety, split=split,
        patches=list(patches or []) or None, makers=makers.split(",") if makers is not None else None,
        glyphs=glyphs.split(",") if glyphs is not None else None,
    )
    if summary.failed:
        raise typer.Exit(1)


def _grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        r, c = text.lower().split("x")
        return int(r), int(c)
    except ValueError:
        raise typer.BadParameter(f"expected ROWSxCOLS such as 1x2, got {text!r}") from None


def _box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise typer.BadParameter(f"expected x0,y0,x1,y1 in video pixels, got {text!r}")
    return values


WeightsOpt = typer.Option(None, "--weights", "-w", help="Registered model name or checkpoint path (default: the shipped model).")
FlowBackendOpt = typer.Option(None, "--flow-backend", help="Optical flow for motion models (default: the one the model was trained on; another is an error).")


@app.command()
def separate(
    inputs: List[Path] = typer.Argument(..., help="Video files and/or folders (searched recursively)."),
    out: Path = typer.Option(Path("separated"), "--out", "-o", help="Output folder."),
    mix: bool = typer.Option(False, "--mix", help="Mix the sound of 2-4 solo videos and separate each back with its own frames."),
    weights: Optional[str] = WeightsOpt,
    flow_backend: Optional[str] = FlowBackendOpt,
    sources: Optional[int] = typer.Option(None, "--sources", "-k", help="Number of sources per video (default: automatic, 1 to 4)."),
    grid: Optional[str] = typer.Option(None, "--grid", help="ROWSxCOLS: each cell of the picture is a source."),
    box: Optional[List[str]] = typer.Option(None, "--box", help="x0,y0,x1,y1 in video pixels: a source region (repeatable)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Overlap of consecutive windows (0 to <1)."),
    fmt: str = typer.Option("wav", "--format", help="wav or flac."),
    sr: Optional[int] = typer.Option(None, "--sr", help="Output sample rate (default: the input's own; full band up to half of it)."),
    channels: str = typer.Option("input", "--channels", help="input (the video's own channel layout) or mono."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo videos whose outputs exist (otherwise they are skipped)."),
    batch: int = typer.Option(4, "--batch", min=1, help="Windows per forward pass."),
    zoom: bool = typer.Option(False, "--zoom", help="See each source closer: its frames cut around its region (with --mix, around where each video's motion follows its sound) and scaled up."),
    device: Optional[str] = DeviceOpt,
    jobs: int = JobsOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Separate each video's sound into one track per visible source (or --mix solo videos and separate them back)."""
    from avsplit import api

    configure(quiet, verbose)
    boxes = [_box(b) for b in box] if box else None
    summary = _run(
        api.separate, inputs, out, mix=mix, weights=weights, flow_backend=flow_backend, device=device, jobs=jobs, sources=sources,
        grid=_grid(grid), boxes=boxes, overlap=overlap, fmt=fmt, sample_rate=sr, channels=channels, overwrite=overwrite,
        batch=batch, zoom=zoom,
    )
    _report_batch(summary, "separated", out)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Folder of videos (optionally DIR/<category>/<id>.mp4) or a Sound-of-Pixels CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (config, log, checkpoints). Never deleted."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation videos (default: hold out 10% of --data)."),
    preset_name: str = typer.Option("small", "--preset", help="Model preset: small, sop, small-motion, som, tiny or tiny-motion."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (default: the preset's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Mixtures per step and process."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd or adam (default: the preset's)."),
    lr_frame: Optional[float] = typer.Option(None, "--lr-frame", help="Learning rate of the frame network."),
    lr_sound: Optional[float] = typer.Option(None, "--lr-sound", help="Learning rate of the sound network and synthesizer."),
    mask: Optional[str] = typer.Option(None, "--mask", help="binary or ratio."),
    num_mix: Optional[int] = typer.Option(None, "--num-mix", min=2, help="Sources mixed per example."),
    backbone_weights: Optional[str] = typer.Option(None, "--backbone-weights", help="none, imagenet or PATH to a ResNet-18 state dict."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    val_every: Optional[int] = typer.Option(None, "--val-every", min=1, help="Validate every N steps."),
    amp: Optional[str] = typer.Option(None, "--amp", help="auto (bf16 on GPU), bf16 or off."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Preprocessing cache folder (default ~/.cache/avsplit)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped (with --steps: extend it)."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from these weights (NAME|PATH) where they fit, e.g. a motion model from an appearance model."),
    curriculum: Optional[bool] = typer.Option(None, "--curriculum/--no-curriculum", help="Easy pairs first, then hard ones, then 3 sources (default: on for motion presets)."),
    curriculum_stages: Optional[str] = typer.Option(None, "--curriculum-stages", help="Custom stages PAIRS:SOURCES:UNTIL,... with PAIRS easy|any|hard, e.g. easy:2:0.2,hard:2:0.6,any:2:0.8,any:3:1."),
    flow_backend: Optional[str] = typer.Option(None, "--flow-backend", help="Motion presets: dis (OpenCV, CPU) or raft (torchvision, GPU)."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Motion presets: synthesizer (pixel-wise masks kept) or film."),
    timbre_db: Optional[float] = typer.Option(None, "--timbre-db", min=0.0, help="Random equaliser per source, band gains up to +-DB (0: off), so the model hears other synthesizers' timbres."),
    sound_styles: Optional[float] = typer.Option(None, "--sound-styles", min=0.0, max=1.0, help="Share of sources played in another sound style: resonances, another register, saturation, other dynamics or a detuned double (0: off)."),
    picture_variety: Optional[bool] = typer.Option(None, "--picture-variety/--no-picture-variety", help="Crops that follow the motion, grey and channel-swapped clips (for varied pictures)."),
    picture_styles: Optional[float] = typer.Option(None, "--picture-styles", min=0.0, max=1.0, help="Share of clips redrawn in another picture style: line drawing, flat colours, blur, negative or grain (0: off)."),
    composite: Optional[float] = typer.Option(None, "--composite", min=0.0, max=1.0, help="Share of two-source examples shown side by side in one picture, each source pooled over its half (teaches duets)."),
    inset: Optional[float] = typer.Option(None, "--inset", min=0.0, max=1.0, help="Share of --composite examples drawn as one source's clip, scaled to 35-65%, inset in the other's picture instead of side by side (players of different sizes, one in front)."),
    equal_level: Optional[bool] = typer.Option(None, "--equal-level/--no-equal-level", help="Bring the mixed sources to the same level before their random gain (for clips recorded at levels far apart)."),
    silent: Optional[float] = typer.Option(None, "--silent", min=0.0, max=1.0, help="Share of examples where one source is shown but not heard (its sound left out of the mixture), so a picture whose sound is absent separates nothing, as the automatic count expects of a group that is no source (0: off)."),
    silent_regions: Optional[float] = typer.Option(None, "--silent-regions", min=0.0, max=1.0, help="Share of examples where one source is replaced by another source's picture outside its player (from the truth beside synth solos), not heard: a region without a player separates nothing, as the automatic count expects (0: off)."),
    own_weight: Optional[float] = typer.Option(None, "--own-weight", min=0.0, help="Models with a mask refiner: weight of the same loss on each source's own masks (before the refiner), what the automatic count compares; 0: off."),
    gain_db: Optional[float] = typer.Option(None, "--gain-db", min=0.0, help="Random gain of each mixed source, up to +-DB (default 6); with --equal-level the sources differ by up to twice this (wider: the model also learns sources far quieter than the others)."),
    zoom: Optional[float] = typer.Option(None, "--zoom", min=1.0, help="Half the crops cut from a part of the frame up to this many times smaller and scaled up (players drawn small are also seen large; 1: off)."),
    category_weight: Optional[float] = typer.Option(None, "--category-weight", min=0.0, help="Weak labels: weight of a loss that makes the frame network name each video's category (the folder DATA/<category>/ it is in); 0: off."),
    category_warmup: Optional[int] = typer.Option(None, "--category-warmup", min=0, help="With --category-weight: steps at the start in which the category loss trains only its new head, not the frame network (a random head's first gradients otherwise upset a model started with --init)."),
    category_on: Optional[str] = typer.Option(None, "--category-on", help="What --category-weight's head reads: appearance (the frame network's pooled features) or vectors (the visual vectors the masks are made from)."),
    temporal_kernel: Optional[int] = typer.Option(None, "--temporal-kernel", min=0, help="Motion presets: steps of motion context each visual vector sees (odd; 0: none)."),
    refiner: Optional[int] = typer.Option(None, "--refiner", min=0, help="Channels of a mask refiner that corrects all sources' masks together (0: none), e.g. 16 with --freeze base."),
    freeze: Optional[str] = typer.Option(None, "--freeze", help="Comma-separated parts kept fixed while fine-tuning from --init: frame, sound, motion, or base (all but the refiner)."),
    device: Optional[str] = DeviceOpt,
    jobs: int = JobsOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Self-supervised mix-and-separate training on a folder of videos. Resumable; runs under torchrun."""
    from avsplit import api

    configure(quiet, verbose)
    model_overrides = {k: v for k, v in dict(mask=mask, num_mix=num_mix, refiner=refiner).items() if v is not None}
    train_overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, optimizer=optimizer, lr_frame=lr_frame,
                                              lr_sound=lr_sound, seed=seed, val_every=val_every, amp=amp,
                                              curriculum=curriculum, curriculum_stages=curriculum_stages,
                                              timbre_db=timbre_db, sound_styles=sound_styles, picture_variety=picture_variety, picture_styles=picture_styles,
                                              composite=composite, inset=inset, equal_level=equal_level, gain_db=gain_db, zoom=zoom, silent=silent,
                                              silent_regions=silent_regions, own_weight=own_weight,
                                              category_weight=category_weight, category_on=category_on,
                                              category_warmup=category_warmup).items()
                       if v is not None}
    if freeze:
        train_overrides["freeze"] = tuple(p.strip() for p in freeze.split(",") if p.strip())
    if curriculum_stages and curriculum is None:
        train_overrides["curriculum"] = True
    motion_overrides = {k: v for k, v in dict(flow_backend=flow_backend, fusion=fusion,
                                              temporal_kernel=temporal_kernel).items() if v is not None}
    summary = _run(
        api.train, data, out, val=val, preset=preset_name, model_overrides=model_overrides,
        train_overrides=train_overrides, backbone_weights=backbone_weights, cache_dir=cache, device=device,
        jobs=jobs, resume=resume, init=init, motion_overrides=motion_overrides,
    )
    if quiet:
        return
    run = summary.steps if summary.steps_run is None else summary.steps_run
    reached = f" (the run is at step {summary.steps})" if run != summary.steps else ""
    console.print(f"trained {run} steps{reached} in {summary.seconds:.0f} s ({summary.clips_per_s:.2f} clips/s); "
                  f"best validation SDR {summary.best_val_sdr:.2f} dB; checkpoints in {summary.run}")


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="Folder of solo videos (and duets with ground truth), e.g. made by `avsplit synth`."),
    weights: Optional[str] = WeightsOpt,
    flow_backend: Optional[str] = FlowBackendOpt,
    pairs: int = typer.Option(32, "--pairs", min=1, help="Number of mixtures."),
    num_mix: int = typer.Option(2, "--num-mix", min=2, max=4, help="Solos per mixture."),
    seed: int = typer.Option(0, "--seed", help="Seed of the (deterministic) choice of mixtures."),
    same_category: bool = typer.Option(False, "--same-category/--different-category", help="Allow mixtures of one category."),
    wild: bool = typer.Option(True, "--wild/--no-wild", help="Also separate multi-source videos that have ground truth."),
    localization: bool = typer.Option(True, "--localization/--no-localization", help="Also score both localize methods where the truth has boxes."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write summary and items as JSON to this file, or to stdout with --json - (then the table is not printed)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write one row per mixture as CSV."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown report."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for an HTML page per mixture (audio, spectrograms, masks, frames)."),
    count: str = typer.Option("auto", "--count", help="Wild videos: auto (as many tracks as `separate` finds; count accuracy scored, a duet left as one track scored as the mixture) or truth (as many as the truth has)."),
    by_domain: bool = typer.Option(False, "--by-domain", help="Print the scores per value of every domain axis (always in --json/--markdown)."),
    zoom: bool = typer.Option(False, "--zoom", help="Sources seen closer, as `separate --zoom` and `separate --mix --zoom` see them."),
    device: Optional[str] = DeviceOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Deterministic mix-and-separate evaluation: SDR/SIR/SAR/NSDR with mixture and oracle-mask baselines."""
    from avsplit import api

    configure(quiet, verbose)
    _run(api.evaluate, data, weights=weights, flow_backend=flow_backend, device=device, pairs=pairs, num_mix=num_mix, seed=seed,
         same_category=same_category, wild=wild, localization=localization, json_path=json_path, csv_path=csv_path, markdown_path=markdown,
         report_dir=report, show=str(json_path) != "-", count=count, by_domain=by_domain, zoom=zoom)


@app.command()
def localize(
    inputs: List[Path] = typer.Argument(..., help="Video files and/or folders (searched recursively)."),
    out: Path = typer.Option(Path("localized"), "--out", "-o", help="Output folder: OUT/<stem>.mp4 (and .npz with --maps)."),
    method: str = typer.Option("model", "--method", help="model (pixel-wise masks of the weights) or onsets (no weights: what moves with the sound)."),
    weights: Optional[str] = WeightsOpt,
    flow_backend: Optional[str] = FlowBackendOpt,
    maps: bool = typer.Option(False, "--maps", help="Also write the raw maps as OUT/<stem>.npz (maps [T,h,w], times [T], frame_size [H,W])."),
    per_source: bool = typer.Option(False, "--per-source", help="Each source found in the video in its own colour (model method)."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Opacity of the overlay."),
    colormap: str = typer.Option("inferno", "--colormap", help="inferno, magma, viridis, jet or hot."),
    hop: float = typer.Option(1.0, "--hop", help="Seconds between the model's windows (at most 1)."),
    map_rate: Optional[float] = typer.Option(None, "--map-rate", help="Maps per second (default: 8 for model, 4 for onsets)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo videos whose outputs exist (otherwise they are skipped)."),
    batch: int = typer.Option(2, "--batch", min=1, help="Windows per forward pass."),
    device: Optional[str] = DeviceOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Heatmap video of where the sound comes from, with the original sound (and optional raw maps)."""
    from avsplit import api

    configure(quiet, verbose)
    summary = _run(
        api.localize, inputs, out, method=method, weights=weights, flow_backend=flow_backend, device=device, maps=maps, per_source=per_source,
        alpha=alpha, colormap=colormap, hop=hop, map_rate=map_rate, overwrite=overwrite, batch=batch,
    )
    _report_batch(summary, "localized", out)


# ---- avsplit data (dataset download) -------------------------------------------------------


@app.command()
def data(
    dataset: str = typer.Argument(..., help="solos or music."),
    out: Path = typer.Argument(..., help="Folder for OUT/<category>/<id>.mp4 and OUT/manifest.json (created if needed)."),
    index: Optional[Path] = typer.Option(None, "--index", help='Index JSON: MUSIC/MUSIC-21 {"videos": {"<category>": ["<id>" or {"id": ..., "segment": [start, end]}, ...]}} or Solos {"<category>": [...]} (default for solos: the solos package\'s).'),
    downloader: str = typer.Option("yt-dlp", "--downloader", help="Downloader command taking yt-dlp's -o TEMPLATE -- URL, e.g. \"yt-dlp --cookies-from-browser firefox\"."),
    fps: float = typer.Option(25.0, "--fps", help="Frame rate of the written videos."),
    short_side: int = typer.Option(360, "--short-side", min=0, help="Scale the short side down to this (never up); 0 keeps the size."),
    yt_format: Optional[str] = typer.Option(None, "--yt-format", help="yt-dlp format selector (default: one file with sound and picture, up to 480 lines)."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Comma-separated categories to fetch (default: all)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N videos per category."),
    retry_unavailable: bool = typer.Option(False, "--retry-unavailable", help="Try again the videos an earlier run found unavailable."),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, help="Parallel downloads."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Download a dataset of solo performances (Solos, MUSIC) through yt-dlp into OUT/<category>/<id>.mp4. Resumable."""
    from avsplit import api
    from avsplit.data.download import print_data_summary

    configure(quiet, verbose)
    cats = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    summary = _run(api.data, dataset, out, index=index, downloader=downloader, jobs=jobs, fps=fps,
                   short_side=short_side or None, yt_format=yt_format, categories=cats, limit=limit,
                   retry_unavailable=retry_unavailable)
    print_data_summary(summary)
    if not summary.ok:
        raise typer.Exit(1)


@app.command()
def blend(
    a: str = typer.Argument(..., help="Starting weights (NAME|PATH), e.g. the model that B was fine-tuned from."),
    b: str = typer.Argument(..., help="Fine-tuned weights (NAME|PATH) of the same architecture."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.safetensors)."),
    weight: float = typer.Option(0.5, "--weight", "-w", min=0.0, max=1.0, help="Share of B: 0 gives A, 1 gives B."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Interpolate two checkpoints' weights, (1 - W) * A + W * B: keeps much of what fine-tuning gained
    and of what the starting model knew."""
    from avsplit import api

    configure(quiet, verbose)
    path = _run(api.blend, a, b, weight, out)
    if not quiet:
        console.print(f"wrote {path} ({1 - weight:.2f} x {a} + {weight:.2f} x {b})")


@app.command()
def models(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON instead of text."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """List shipped and registered weights with their configuration and measured scores (on stdout)."""
    from avsplit import api

    configure(quiet, verbose)
    _run(api.print_models, as_json=as_json)


if __name__ == "__main__":
    app()
