"""The dataset generator: plans the videos, makes each one (in parallel processes), writes the
ground truth beside it.

Layout (a contract other code relies on)::

    OUT/synth.json                                  generation parameters and the list of videos
    OUT/solos/<category>/solo-0003.mp4              one instrument
    OUT/solos/<category>/solo-0003.truth.json       boxes, sounding flags, onsets per source
    OUT/solos/<category>/solo-0003.source-1.wav     clean audio of each source
    OUT/duets/duet-0001.mp4 (+ .truth.json, .source-1.wav, .source-2.wav)

Sources are numbered 1..K left to right by the horizontal centre of their box averaged over the
video. The video's sound track is the sum of its source WAVs. Every video draws its randomness
from ``(seed, kind, index)`` only, so the result does not depend on ``jobs`` or on which videos
already exist.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit import __version__
from avsplit.console import error_line, log, make_progress, warn_line
from avsplit.errors import AvsplitError, ConfigError
from avsplit.files import ensure_dir
from avsplit.io import VideoWriter
from avsplit.synth.audio import RendererChoice, resolve_renderer
from avsplit.synth.clip import Settings, make_sound
from avsplit.synth.glyphs import find_outline_font
from avsplit.synth.instruments import CATEGORY_BY_NAME, DISTRACTORS, Category, resolve_categories
from avsplit.synth.look import build_actors, plan_look, render_look
from avsplit.synth.makers import find_soundfonts
from avsplit.synth.plan import Job, check_numbers, plan_videos, seed_sequence
from avsplit.synth.resources import loadable_soundfonts, resolve_resources
from avsplit.synth.sprites import SpriteChoice, resolve_sprites
from avsplit.synth.truth import TRUTH_VERSION, dumps, is_complete, write_text, write_truth
from avsplit.synth.variety import SPLITS, VARIETIES, Resources

__all__ = ["SynthSummary", "generate_dataset"]

#: Parameters that change the content of a video; a folder made with other values is not resumed.
_CONTENT_KEYS = ("seed", "seconds", "width", "height", "fps", "sample_rate", "distractors", "categories", "renderer",
                 "soundfont", "sprites", "variety", "split", "soundfonts", "patches", "makers")


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` did."""

    out: Path
    written: list[Path] = field(default_factory=list)
    """Videos made by this run."""
    skipped: list[Path] = field(default_factory=list)
    """Videos that were already complete (kept as they are)."""
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """Videos that could not be made, with the one-line reason."""
    renderer: str = "additive"
    """Audio renderer used: ``fluidsynth`` or ``additive``."""
    soundfont: Path | None = None
    sprites: str = "drawn"
    """Sprite kind used: ``emoji`` or ``drawn``."""


# ------------------------------------------------------------------------------------ one video


def _make_video(job: Job, st: Settings) -> None:
    """Make one video with its truth files (sources, then video, then the truth JSON last)."""
    streams = seed_sequence(st.seed, job.kind, job.index).spawn(6)
    rng_scene, rng_audio, rng_motion, rng_extra, rng_domain, rng_look = (np.random.default_rng(s) for s in streams)
    cats = [CATEGORY_BY_NAME[name] for name in job.categories]
    sound = make_sound(st, cats, rng_audio, rng_domain)
    look = plan_look(st, job.kind, len(cats), sound, rng_look, rng_scene)
    actors, extras, sounding = build_actors(st, look, cats, sound, rng_motion, rng_extra)

    boxes: list[list[list[int]]] = [[] for _ in actors]
    bitrate = sound.video_chain["aac_kbps"] * 1000 if sound.video_chain else None
    with VideoWriter(job.video, fps=look.fps, width=look.width, height=look.height, audio=sound.mix,
                     audio_rate=st.sample_rate, crf=look.crf, audio_bitrate=bitrate) as writer:
        for frame, frame_boxes in render_look(look, actors):
            writer.write(frame)
            for i, box in enumerate(frame_boxes):
                boxes[i].append(box)
    write_truth(job.video, job.kind, st, cats, sound, look, boxes, extras, sounding)


def _glyph_kinds(sprite_kind: str) -> tuple[str, ...]:
    """Glyph styles that render here."""
    kinds = ["drawn"] + (["emoji"] if sprite_kind == "emoji" else [])
    if find_outline_font() is not None:
        kinds.append("outline")
    return tuple(kinds)


def _run_job(job: Job, st: Settings) -> tuple[str, str | None]:
    """``("written" | "skipped" | "failed", reason)`` for one video (runs in a worker process)."""
    if not st.overwrite and is_complete(job.video):
        return "skipped", None
    try:
        _make_video(job, st)
    except AvsplitError as exc:
        return "failed", str(exc)
    except OSError as exc:
        return "failed", f"{job.video}: cannot write ({exc.strerror or exc}). Choose a writable output folder with free space."
    return "written", None


# ------------------------------------------------------------------------------------- the run


def _check_existing(out: Path, params: dict, overwrite: bool) -> None:
    """Refuse to mix a new dataset into a folder generated with other content settings."""
    manifest = out / "synth.json"
    if overwrite or not manifest.is_file():
        return
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    changed = [k for k in _CONTENT_KEYS if k in old and old[k] != params[k]]
    if changed:
        detail = ", ".join(f"{k} {old[k]!r} -> {params[k]!r}" for k in changed[:3])
        raise ConfigError(
            f"already holds a synthetic dataset made with other settings ({detail})", out,
            "use another output folder, the same settings to resume, or --overwrite",
        )


@dataclass(frozen=True)
class _Makers:
    """What makes a run's sound and pictures."""

    renderer: RendererChoice
    sprites: SpriteChoice
    resources: Resources
    available: dict | None
    """``variety full``: what was found of each kind of resource (for ``synth.json``)."""
    soundfonts: tuple
    """``variety none``: the SoundFonts drawn per source (the renderer's one when none is given)."""

    def describe_audio(self, variety: str) -> str:
        if variety == "full":
            res = self.resources
            found = ([("sf", f"sf:{f.stem}") for f in res.soundfonts] + [("patch", f"patch:{p.name}") for p in res.patch_sets]
                     + [("additive", "additive"), ("physical", "physical")] + ([("real", "real")] if res.sample_dir else []))
            return "+".join(name for kind, name in found if res.makers is None or kind in res.makers)
        return f"{self.renderer.name}" + (f" ({self.renderer.soundfont.name})" if self.renderer.soundfont else "")


def _resolve_makers(renderer: str, fonts: list, sprites: str, cats: Sequence[Category], distractors: int,
                    variety: str, sample_rate: int, patches: Sequence = (), sound_makers: Sequence[str] | None = None,
                    glyph_styles: Sequence[str] | None = None) -> _Makers:
    """The renderer, sprites and resources a run asks for and this machine has; warns once about each
    thing that falls back."""
    choice = resolve_renderer(renderer, fonts[0] if fonts else None, int(sample_rate))
    glyphs = [c.emoji for c in cats] + ([d.emoji for d in DISTRACTORS] if distractors else [])
    sprite_choice = resolve_sprites(sprites, glyphs)
    warnings = [choice.warning, sprite_choice.warning] if variety == "none" else [sprite_choice.warning]
    if sprite_choice.missing:
        warnings.append(f"the emoji font has no glyph for {' '.join(sprite_choice.missing)}; drawing those objects instead")
    resources, available = Resources(), None
    basic_fonts: tuple = ()
    if variety == "full":
        resources, available, more = resolve_resources(renderer, fonts, _glyph_kinds(sprite_choice.kind), None,
                                                       patches, sound_makers, glyph_styles)
        warnings += more
    elif choice.name == "fluidsynth":  # every font drawn must be General MIDI (a drum kit is refused)
        basic_fonts = tuple(loadable_soundfonts(find_soundfonts(fonts or [choice.soundfont]), strict=True)[0])
    for warning in dict.fromkeys(w for w in warnings if w):
        warn_line(warning)
    return _Makers(choice, sprite_choice, resources, available, basic_fonts)


def _manifest(out: Path, plan: list[Job], st: Settings, makers: _Makers, counts: tuple[int, int, float],
              cats: Sequence[Category], fonts: list) -> dict:
    """``synth.json``: the run's parameters and its videos. ``counts``: solos, duets, same-kind share."""
    solos, duets, same_kind = counts
    return {
        "version": TRUTH_VERSION,
        "avsplit": __version__,
        "solos": solos,
        "duets": duets,
        "same_kind": same_kind,
        "seconds": st.seconds,
        "width": st.width,
        "height": st.height,
        "fps": st.fps,
        "sample_rate": st.sample_rate,
        "seed": st.seed,
        "distractors": st.distractors,
        "categories": [c.name for c in cats],
        "renderer": makers.renderer.name,
        "soundfont": str(makers.renderer.soundfont) if makers.renderer.soundfont else None,
        "sprites": makers.sprites.kind,
        "variety": st.variety,
        "split": st.split,
        "soundfonts": [str(Path(f).expanduser().absolute()) for f in fonts],
        "patches": [str(p.path) for p in st.resources.patch_sets],
        "makers": list(st.resources.makers) if st.resources.makers is not None else None,
        "available": makers.available,
        "videos": [
            {"video": job.video.relative_to(out).as_posix(), "kind": job.kind, "categories": list(job.categories)}
            for job in plan
        ],
    }


def _run_jobs(plan: list[Job], st: Settings, jobs: int, summary: SynthSummary) -> None:
    """Make the videos of ``plan`` (in ``jobs`` worker processes), recording each outcome in ``summary``
    in the plan's order."""

    def record(job: Job, status: str, reason: str | None) -> None:
        if status == "written":
            summary.written.append(job.video)
        elif status == "skipped":
            summary.skipped.append(job.video)
        else:
            summary.failed.append((job.video, reason or "failed"))
            error_line(reason or f"{job.video}: failed")

    n_workers = max(1, min(int(jobs), len(plan)))
    with make_progress() as progress:
        task = progress.add_task("synth", total=len(plan), status="")
        if n_workers == 1:
            for job in plan:
                progress.update(task, status=job.name)
                record(job, *_run_job(job, st))
                progress.advance(task)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
                futures = {pool.submit(_run_job, job, st): job for job in plan}
                try:
                    for future in as_completed(futures):
                        job = futures[future]
                        try:
                            status, reason = future.result()
                        except BrokenProcessPool:
                            status, reason = "failed", f"{job.video}: the worker process died (out of memory?). Run again to resume."
                        record(job, status, reason)
                        progress.update(task, status=job.name)
                        progress.advance(task)
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    order = {job.video: i for i, job in enumerate(plan)}
    summary.written.sort(key=order.__getitem__)
    summary.skipped.sort(key=order.__getitem__)
    summary.failed.sort(key=lambda item: order[item[0]])


def generate_dataset(
    out: str | Path,
    *,
    solos: int = 16,
    duets: int = 4,
    same_kind: float = 0.5,
    seconds: float = 8.0,
    size: tuple[int, int] = (320, 240),
    fps: float = 24.0,
    sample_rate: int = 22050,
    seed: int = 0,
    soundfont: str | Path | Sequence[str | Path] | None = None,
    distractors: int = 0,
    categories: Sequence[str] | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    renderer: str = "auto",
    sprites: str = "auto",
    variety: str = "none",
    split: str = "all",
    patches: str | Path | Sequence[str | Path] | None = None,
    makers: Sequence[str] | None = None,
    glyphs: Sequence[str] | None = None,
) -> SynthSummary:
    """Generate the synthetic audio-visual dataset into ``out``.

    ``solos`` videos of one instrument (``OUT/solos/<category>/solo-NNNN.mp4``, categories
    spread evenly) and ``duets`` videos of two side by side (``OUT/duets/duet-NNNN.mp4``), of
    which exactly ``round(duets * same_kind)`` show two instruments of the same kind. Each video
    is ``seconds`` long at ``size`` (width, height) and ``fps``, with a mono sound track at
    ``sample_rate``, and has ``distractors`` silent moving objects. Ground truth beside each
    video: ``<stem>.truth.json`` and ``<stem>.source-<k>.wav``.

    ``renderer``: ``auto`` (FluidSynth with ``soundfont`` or a system General MIDI SoundFont when
    available, else the built-in additive synthesizer), ``fluidsynth`` or ``additive``.
    ``sprites``: ``auto`` (Noto Color Emoji when installed, else drawn shapes), ``emoji`` or
    ``drawn``. Existing complete videos are skipped unless ``overwrite``; ``jobs`` worker
    processes share the work, with identical results for any ``jobs``.

    ``soundfont`` may be several files (drawn per source). ``variety``: ``none`` (today's
    clips) or ``full`` (every axis of docs/domains.md varies: sound makers with real recordings,
    performance, recording chain, picture and motion). ``split``: ``all``, ``train`` (never a
    held-out value) or ``foreign`` (held-out values only); ``train``/``foreign`` imply ``full``.
    Every truth names its domain. With ``full``: ``patches``, GUS patch set folders (e.g. Debian's
    ``/usr/share/midi/freepats``), are sound banks beside the SoundFonts; ``makers`` restricts the
    kinds of sound maker drawn (``sf``, ``patch``, ``additive``, ``physical``, ``real``);
    ``glyphs`` the glyph styles drawn (``emoji``, ``outline``, ``drawn``, ``mono``; default: the
    first three).
    """
    out = Path(out)
    width, height = check_numbers(solos, duets, same_kind, seconds, size, fps, sample_rate, distractors, jobs)
    if variety not in VARIETIES:
        raise ConfigError(f"unknown variety {variety!r}", None, f"use one of: {', '.join(VARIETIES)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", None, f"use one of: {', '.join(SPLITS)}")
    if split != "all":
        variety = "full"
    fonts = [soundfont] if isinstance(soundfont, (str, Path)) else list(soundfont or [])
    patch_dirs = [patches] if isinstance(patches, (str, Path)) else list(patches or [])
    if variety != "full" and (patch_dirs or makers is not None or glyphs is not None):
        raise ConfigError("--patches, --makers and --glyphs choose among the sound makers and pictures of --variety full", None,
                          "add --variety full (or --split train/foreign)")
    cats = resolve_categories(categories)
    makers = _resolve_makers(renderer, fonts, sprites, cats, distractors, variety, sample_rate, patch_dirs, makers, glyphs)
    settings = Settings(
        seconds=float(seconds), width=width, height=height, fps=float(fps), sample_rate=int(sample_rate),
        seed=int(seed), distractors=int(distractors), renderer=makers.renderer, sprite_kind=makers.sprites.kind,
        font=makers.sprites.font, overwrite=bool(overwrite), variety=variety, split=split, resources=makers.resources,
        soundfonts=makers.soundfonts,
    )

    ensure_dir(out)
    plan = plan_videos(out, int(solos), int(duets), float(same_kind), int(seed), cats)
    params = _manifest(out, plan, settings, makers, (int(solos), int(duets), float(same_kind)), cats, fonts)
    _check_existing(out, params, overwrite)
    write_text(out / "synth.json", dumps(params))

    summary = SynthSummary(out=out, renderer=makers.renderer.name, soundfont=makers.renderer.soundfont,
                           sprites=makers.sprites.kind)
    log.info(f"synth: {len(plan)} video{'' if len(plan) == 1 else 's'} into {out} (audio: {makers.describe_audio(variety)}, "
             f"sprites: {makers.sprites.kind}, variety: {variety}, split: {split})")
    _run_jobs(plan, settings, jobs, summary)
    log.info(f"synth: {len(summary.written)} written, {len(summary.skipped)} skipped, {len(summary.failed)} failed")
    return summary
