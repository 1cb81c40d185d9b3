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
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit import __version__
from avsplit.console import error_line, log, make_progress, warn_line
from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, ensure_dir
from avsplit.synth.audio import RendererChoice, balance_sources, frame_rms, loudness, render_source, resolve_renderer
from avsplit.synth.instruments import CATEGORIES, DISTRACTORS, Category, resolve_categories
from avsplit.synth.melody import random_melody
from avsplit.synth.scene import (
    Actor,
    distractor_layout,
    distractor_motion,
    duet_layout,
    fit_sprite,
    instrument_motion,
    render_scene,
    solo_layout,
)
from avsplit.synth.sprites import make_background, resolve_sprites, sprite_image

__all__ = ["SynthSummary", "generate_dataset", "TRUTH_VERSION"]

TRUTH_VERSION = 1
_SEED_MASK = (1 << 64) - 1
_KIND_CODE = {"plan": 0, "solo": 1, "duet": 2, "duet-kinds": 3}
_BY_NAME = {c.name: c for c in CATEGORIES}
#: Parameters that change the content of a video; a folder made with other values is not resumed.
_CONTENT_KEYS = ("seed", "seconds", "width", "height", "fps", "sample_rate", "distractors", "categories", "renderer",
                 "soundfont", "sprites")


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


@dataclass(frozen=True)
class _Settings:
    seconds: float
    width: int
    height: int
    fps: float
    sample_rate: int
    seed: int
    distractors: int
    renderer: RendererChoice
    sprite_kind: str
    font: Path | None
    overwrite: bool

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))

    @property
    def n_samples(self) -> int:
        return max(1, int(round(self.seconds * self.sample_rate)))


@dataclass(frozen=True)
class _Job:
    kind: str
    index: int
    categories: tuple[str, ...]
    video: Path

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index:04d}"


def _seed_sequence(seed: int, kind: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) & _SEED_MASK, _KIND_CODE[kind], int(index)])


# ------------------------------------------------------------------------------------ planning


def _plan(out: Path, solos: int, duets: int, same_kind: float, seed: int, cats: Sequence[Category]) -> list[_Job]:
    plan_rng = np.random.default_rng(_seed_sequence(seed, "plan", 0))
    order = plan_rng.permutation(len(cats))
    jobs: list[_Job] = []
    for i in range(solos):
        cat = cats[int(order[i % len(cats)])]
        jobs.append(_Job("solo", i, (cat.name,), out / "solos" / cat.name / f"solo-{i:04d}.mp4"))
    n_same = int(round(duets * same_kind))
    same = {int(i) for i in plan_rng.permutation(duets)[:n_same]} if duets else set()
    if duets - n_same > 0 and len(cats) < 2:
        raise ConfigError(
            "duets of two different instruments need at least two categories", None,
            "give more --categories, or --same-kind 1",
        )
    for i in range(duets):
        rng = np.random.default_rng(_seed_sequence(seed, "duet-kinds", i))
        if i in same:
            name = cats[int(rng.integers(len(cats)))].name
            names = (name, name)
        else:
            a, b = rng.choice(len(cats), size=2, replace=False)
            names = (cats[int(a)].name, cats[int(b)].name)
        jobs.append(_Job("duet", i, names, out / "duets" / f"duet-{i:04d}.mp4"))
    return jobs


def _validate(solos, duets, same_kind, seconds, size, fps, sample_rate, distractors, jobs) -> tuple[int, int]:
    if solos < 0 or duets < 0:
        raise ConfigError("the numbers of solos and duets cannot be negative")
    if not 0.0 <= float(same_kind) <= 1.0:
        raise ConfigError(f"same_kind must be between 0 and 1, got {same_kind}")
    if not float(seconds) > 0 or float(seconds) > 3600:
        raise ConfigError(f"seconds must be between 0 and 3600, got {seconds}")
    try:
        width, height = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"size must be (width, height), got {size!r}") from None
    if width < 32 or height < 32 or width > 4096 or height > 4096:
        raise ConfigError(f"frame size must be between 32x32 and 4096x4096, got {width}x{height}")
    if not 1.0 <= float(fps) <= 120.0:
        raise ConfigError(f"fps must be between 1 and 120, got {fps}")
    if not 8000 <= int(sample_rate) <= 96000:
        raise ConfigError(f"sample rate must be between 8000 and 96000 Hz, got {sample_rate}")
    if distractors < 0 or distractors > 16:
        raise ConfigError(f"distractors must be between 0 and 16, got {distractors}")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    return width, height


# ------------------------------------------------------------------------------------ one video


def _truth_path(video: Path) -> Path:
    return video.with_name(video.stem + ".truth.json")


def _source_path(video: Path, k: int) -> Path:
    return video.with_name(f"{video.stem}.source-{k}.wav")


def _is_complete(video: Path) -> bool:
    truth = _truth_path(video)
    if not (video.is_file() and truth.is_file()):
        return False
    try:
        data = json.loads(truth.read_text(encoding="utf-8"))
        files = [video.with_name(s["audio"]) for s in data["sources"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(files) and all(f.is_file() for f in files)


def _dumps(obj) -> str:
    """JSON with two-space indentation, but short lists of numbers/booleans kept on one line."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    atom = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)"
    pattern = re.compile(r"\[\s*(" + atom + r"(?:\s*,\s*" + atom + r")*)\s*\]")
    return pattern.sub(lambda m: "[" + ", ".join(p.strip() for p in m.group(1).split(",")) + "]", text) + "\n"


def _write_text(path: Path, text: str) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except PermissionError as exc:
        raise OutputError("permission denied", path, "choose a writable output folder") from exc


def _make_video(job: _Job, st: _Settings) -> None:
    """Make one video with its truth files (sources, then video, then the truth JSON last)."""
    from avsplit.media import VideoWriter, write_audio

    streams = _seed_sequence(st.seed, job.kind, job.index).spawn(4)
    rng_scene, rng_audio, rng_motion, rng_extra = (np.random.default_rng(s) for s in streams)
    cats = [_BY_NAME[name] for name in job.categories]
    width, height, fps, sr = st.width, st.height, st.fps, st.sample_rate
    n_frames, n_samples = st.n_frames, st.n_samples

    # Scene layout.
    background = make_background(rng_scene, width, height)
    places = solo_layout(rng_scene, width, height) if job.kind == "solo" else duet_layout(rng_scene, width, height)

    # Sound: a melody per source, rendered, levelled and mixed.
    melodies = [random_melody(rng_audio, cat, st.seconds) for cat in cats]
    raw = [render_source(st.renderer, cat, mel, sr, n_samples, rng_audio) for cat, mel in zip(cats, melodies)]
    for cat, audio in zip(cats, raw):
        if not np.any(np.abs(audio) > 1e-5):
            where = st.renderer.soundfont if st.renderer.name == "fluidsynth" else None
            raise AvsplitError(f"the {st.renderer.name} renderer produced silence for {cat.name}", where,
                               "try another SoundFont or --soundfont with a complete General MIDI one")
    gains = [0.0] if len(cats) == 1 else [float(g) for g in rng_audio.uniform(-3.0, 3.0, size=len(cats))]
    sources, mix = balance_sources(raw, gains)

    # Motion from each source's own loudness and onsets.
    actors: list[Actor] = []
    extras = []
    if st.distractors:
        picks = rng_extra.permutation(len(DISTRACTORS))
        spots = distractor_layout(rng_extra, width, height, st.distractors)
        for i, (cx, cy, h, max_w) in enumerate(spots):
            obj = DISTRACTORS[int(picks[i % len(picks)])]
            image = fit_sprite(sprite_image(st.sprite_kind, st.font, obj.emoji, obj.shape, obj.colour), h, max_w)
            actors.append(Actor(image, cx, cy, distractor_motion(rng_extra, fps, n_frames)))
            extras.append(obj)
    sounding = []
    for cat, audio, mel, (cx, cy, h, max_w) in zip(cats, sources, melodies, places):
        level, flags = loudness(frame_rms(audio, sr, fps, n_frames))
        sounding.append(flags)
        image = fit_sprite(sprite_image(st.sprite_kind, st.font, cat.emoji, cat.shape, cat.colour), h, max_w)
        actors.append(Actor(image, cx, cy, instrument_motion(level, mel.onsets, fps, rng_motion)))

    # Picture (with the mixture as its sound track).
    boxes: list[list[list[int]]] = [[] for _ in actors]
    with VideoWriter(job.video, fps=fps, width=width, height=height, audio=mix, audio_rate=sr) as writer:
        for frame, frame_boxes in render_scene(background, actors, n_frames):
            writer.write(frame)
            for i, box in enumerate(frame_boxes):
                boxes[i].append(box)

    # Truth: sources left to right by mean box centre.
    n_extra = len(extras)
    src_boxes = boxes[n_extra:]
    centres = [float(np.mean([(b[0] + b[2]) / 2 for b in bx])) for bx in src_boxes]
    order = sorted(range(len(cats)), key=lambda i: (centres[i], i))
    entries = []
    for k, i in enumerate(order, start=1):
        path = _source_path(job.video, k)
        write_audio(path, sources[i], sr)
        entries.append({
            "index": k,
            "category": cats[i].name,
            "program": cats[i].program,
            "bank": cats[i].bank,
            "audio": path.name,
            "boxes": src_boxes[i],
            "sounding": [bool(x) for x in sounding[i]],
            "onsets": [round(float(t), 4) for t in melodies[i].onsets],
        })
    truth = {
        "version": TRUTH_VERSION,
        "video": job.video.name,
        "kind": job.kind,
        "fps": float(fps),
        "num_frames": n_frames,
        "width": width,
        "height": height,
        "sample_rate": sr,
        "seconds": float(st.seconds),
        "seed": int(st.seed),
        "generator": {
            "renderer": st.renderer.name,
            "soundfont": str(st.renderer.soundfont) if st.renderer.soundfont else None,
            "sprites": st.sprite_kind,
        },
        "sources": entries,
        "distractors": [{"kind": obj.name, "boxes": boxes[i]} for i, obj in enumerate(extras)],
    }
    _write_text(_truth_path(job.video), _dumps(truth))


def _run_job(job: _Job, st: _Settings) -> tuple[str, str | None]:
    """``("written" | "skipped" | "failed", reason)`` for one video (runs in a worker process)."""
    if not st.overwrite and _is_complete(job.video):
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
    soundfont: str | Path | None = None,
    distractors: int = 0,
    categories: Sequence[str] | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    renderer: str = "auto",
    sprites: str = "auto",
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
    """
    out = Path(out)
    width, height = _validate(solos, duets, same_kind, seconds, size, fps, sample_rate, distractors, jobs)
    cats = resolve_categories(categories)
    choice = resolve_renderer(renderer, soundfont, int(sample_rate))
    glyphs = [c.emoji for c in cats] + ([d.emoji for d in DISTRACTORS] if distractors else [])
    sprite_choice = resolve_sprites(sprites, glyphs)
    for warning in (choice.warning, sprite_choice.warning):
        if warning:
            warn_line(warning)
    if sprite_choice.missing:
        warn_line(f"the emoji font has no glyph for {' '.join(sprite_choice.missing)}; drawing those objects instead")

    ensure_dir(out)
    plan = _plan(out, int(solos), int(duets), float(same_kind), int(seed), cats)
    params = {
        "version": TRUTH_VERSION,
        "avsplit": __version__,
        "solos": int(solos),
        "duets": int(duets),
        "same_kind": float(same_kind),
        "seconds": float(seconds),
        "width": width,
        "height": height,
        "fps": float(fps),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "distractors": int(distractors),
        "categories": [c.name for c in cats],
        "renderer": choice.name,
        "soundfont": str(choice.soundfont) if choice.soundfont else None,
        "sprites": sprite_choice.kind,
        "videos": [
            {"video": job.video.relative_to(out).as_posix(), "kind": job.kind, "categories": list(job.categories)}
            for job in plan
        ],
    }
    _check_existing(out, params, overwrite)
    _write_text(out / "synth.json", _dumps(params))

    settings = _Settings(
        seconds=float(seconds), width=width, height=height, fps=float(fps), sample_rate=int(sample_rate),
        seed=int(seed), distractors=int(distractors), renderer=choice, sprite_kind=sprite_choice.kind,
        font=sprite_choice.font, overwrite=bool(overwrite),
    )
    summary = SynthSummary(out=out, renderer=choice.name, soundfont=choice.soundfont, sprites=sprite_choice.kind)
    where = f"{choice.name}" + (f" ({choice.soundfont.name})" if choice.soundfont else "")
    log.info(f"synth: {len(plan)} video{'' if len(plan) == 1 else 's'} into {out} (audio: {where}, sprites: {sprite_choice.kind})")

    def record(job: _Job, status: str, reason: str | None) -> None:
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
                record(job, *_run_job(job, settings))
                progress.advance(task)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
                futures = {pool.submit(_run_job, job, settings): job for job in plan}
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
    log.info(f"synth: {len(summary.written)} written, {len(summary.skipped)} skipped, {len(summary.failed)} failed")
    return summary
