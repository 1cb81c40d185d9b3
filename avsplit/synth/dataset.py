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
from avsplit.files import atomic_path, ensure_dir, json_text, truth_path, truth_source_path
from avsplit.io import VideoWriter, write_audio
from avsplit.synth.audio import fluidsynth_problem, resolve_renderer
from avsplit.synth.clip import Settings, make_sound, sound_truth
from avsplit.synth.glyphs import find_outline_font
from avsplit.synth.instruments import CATEGORIES, DISTRACTORS, Category, resolve_categories
from avsplit.synth.look import build_actors, plan_look, render_look
from avsplit.synth.makers import find_soundfonts
from avsplit.synth.resources import loadable_soundfonts, resolve_resources
from avsplit.synth.sprites import resolve_sprites
from avsplit.synth.variety import SPLITS, VARIETIES, Resources, domain_of

__all__ = ["SynthSummary", "generate_dataset", "TRUTH_VERSION"]

TRUTH_VERSION = 2
_SEED_MASK = (1 << 64) - 1
_KIND_CODE = {"plan": 0, "solo": 1, "duet": 2, "duet-kinds": 3}
_BY_NAME = {c.name: c for c in CATEGORIES}
#: Parameters that change the content of a video; a folder made with other values is not resumed.
_CONTENT_KEYS = ("seed", "seconds", "width", "height", "fps", "sample_rate", "distractors", "categories", "renderer",
                 "soundfont", "sprites", "variety", "split", "soundfonts")


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


def _is_complete(video: Path) -> bool:
    truth = truth_path(video)
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
    text = json_text(obj, indent=2, ensure_ascii=False)
    atom = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)"
    pattern = re.compile(r"\[\s*(" + atom + r"(?:\s*,\s*" + atom + r")*)\s*\]")
    return pattern.sub(lambda m: "[" + ", ".join(p.strip() for p in m.group(1).split(",")) + "]", text) + "\n"


def _write_text(path: Path, text: str) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except PermissionError as exc:
        raise OutputError("permission denied", path, "choose a writable output folder") from exc


def _make_video(job: _Job, st: Settings) -> None:
    """Make one video with its truth files (sources, then video, then the truth JSON last)."""
    streams = _seed_sequence(st.seed, job.kind, job.index).spawn(6)
    rng_scene, rng_audio, rng_motion, rng_extra, rng_domain, rng_look = (np.random.default_rng(s) for s in streams)
    cats = [_BY_NAME[name] for name in job.categories]
    sound = make_sound(st, cats, rng_audio, rng_domain)
    look = plan_look(st, job.kind, len(cats), sound, rng_look, rng_scene)
    width, height, fps = look.width, look.height, look.fps
    actors, extras, sounding = build_actors(st, look, cats, sound, rng_motion, rng_extra)

    boxes: list[list[list[int]]] = [[] for _ in actors]
    bitrate = sound.video_chain["aac_kbps"] * 1000 if sound.video_chain else None
    with VideoWriter(job.video, fps=fps, width=width, height=height, audio=sound.mix, audio_rate=st.sample_rate,
                     crf=look.crf, audio_bitrate=bitrate) as writer:
        for frame, frame_boxes in render_look(look, actors):
            writer.write(frame)
            for i, box in enumerate(frame_boxes):
                boxes[i].append(box)

    # Truth: sources left to right by mean box centre.
    n_extra = len(extras)
    src_boxes = boxes[n_extra:]
    centres = [float(np.mean([(b[0] + b[2]) / 2 for b in bx])) for bx in src_boxes]
    order = sorted(range(len(cats)), key=lambda i: (centres[i], i))
    extras_truth, details = sound_truth(sound, order)
    entries = []
    for k, (i, extra) in enumerate(zip(order, extras_truth), start=1):
        path = truth_source_path(job.video, k)
        write_audio(path, sound.sources[i], st.sample_rate)
        entry = {
            "index": k,
            "category": cats[i].name,
            "program": cats[i].program,
            "bank": cats[i].bank,
            "audio": path.name,
            "boxes": src_boxes[i],
            "sounding": [bool(x) for x in sounding[i]],
            "onsets": [round(float(t), 4) for t in sound.melodies[i].onsets],
        }
        entry.update(extra)
        entry["domain"]["glyph"] = look.glyphs[i]
        if i < len(sound.plans) and sound.plans[i].take is not None:
            entry["take"] = sound.performances[i].get("take")
        entries.append(entry)
    domain = domain_of([e["domain"] for e in entries], sound.plans, look.background)
    noise = None
    if sound.noise is not None:
        noise_path = job.video.with_name(f"{job.video.stem}.noise.wav")
        write_audio(noise_path, sound.noise, st.sample_rate)
        noise = {"audio": noise_path.name, **sound.video_chain["noise"]}
    truth = {
        "version": TRUTH_VERSION,
        "video": job.video.name,
        "kind": job.kind,
        "fps": float(fps),
        "num_frames": look.n_frames,
        "width": width,
        "height": height,
        "sample_rate": st.sample_rate,
        "seconds": float(st.seconds),
        "seed": int(st.seed),
        "domain": domain,
        "generator": {
            "renderer": st.renderer.name,
            "soundfont": str(st.renderer.soundfont) if st.renderer.soundfont else None,
            "sprites": st.sprite_kind,
            **({"variety": st.variety, "split": st.split, **details, "picture": look.describe()} if st.variety == "full" else {}),
        },
        "noise": noise,
        "sources": entries,
        "distractors": [{"kind": obj.name, "boxes": boxes[i]} for i, obj in enumerate(extras)],
    }
    _write_text(truth_path(job.video), _dumps(truth))


def _glyph_kinds(sprite_kind: str) -> tuple[str, ...]:
    """Glyph styles that render here."""
    kinds = ["drawn"] + (["emoji"] if sprite_kind == "emoji" else [])
    if find_outline_font() is not None:
        kinds.append("outline")
    return tuple(kinds)


def _run_job(job: _Job, st: Settings) -> tuple[str, str | None]:
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
    soundfont: str | Path | Sequence[str | Path] | None = None,
    distractors: int = 0,
    categories: Sequence[str] | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    renderer: str = "auto",
    sprites: str = "auto",
    variety: str = "none",
    split: str = "all",
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
    Every truth names its domain.
    """
    out = Path(out)
    width, height = _validate(solos, duets, same_kind, seconds, size, fps, sample_rate, distractors, jobs)
    if variety not in VARIETIES:
        raise ConfigError(f"unknown variety {variety!r}", None, f"use one of: {', '.join(VARIETIES)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", None, f"use one of: {', '.join(SPLITS)}")
    if split != "all":
        variety = "full"
    fonts = [soundfont] if isinstance(soundfont, (str, Path)) else list(soundfont or [])
    cats = resolve_categories(categories)
    choice = resolve_renderer(renderer, fonts[0] if fonts else None, int(sample_rate))
    glyphs = [c.emoji for c in cats] + ([d.emoji for d in DISTRACTORS] if distractors else [])
    sprite_choice = resolve_sprites(sprites, glyphs)
    warnings = [choice.warning, sprite_choice.warning] if variety == "none" else [sprite_choice.warning]
    if sprite_choice.missing:
        warnings.append(f"the emoji font has no glyph for {' '.join(sprite_choice.missing)}; drawing those objects instead")
    resources, available = Resources(), None
    basic_fonts: tuple = ()
    if variety == "full":
        resources, available, more = resolve_resources(renderer, fonts, _glyph_kinds(sprite_choice.kind), None)
        warnings += more
    elif choice.name == "fluidsynth" and len(fonts) > 1:
        basic_fonts = tuple(loadable_soundfonts(find_soundfonts(fonts), strict=True)[0])
    for warning in dict.fromkeys(w for w in warnings if w):
        warn_line(warning)

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
        "variety": variety,
        "split": split,
        "soundfonts": [str(Path(f).expanduser().absolute()) for f in fonts],
        "available": available,
        "videos": [
            {"video": job.video.relative_to(out).as_posix(), "kind": job.kind, "categories": list(job.categories)}
            for job in plan
        ],
    }
    _check_existing(out, params, overwrite)
    _write_text(out / "synth.json", _dumps(params))

    settings = Settings(
        seconds=float(seconds), width=width, height=height, fps=float(fps), sample_rate=int(sample_rate),
        seed=int(seed), distractors=int(distractors), renderer=choice, sprite_kind=sprite_choice.kind,
        font=sprite_choice.font, overwrite=bool(overwrite), variety=variety, split=split, resources=resources,
        soundfonts=basic_fonts,
    )
    summary = SynthSummary(out=out, renderer=choice.name, soundfont=choice.soundfont, sprites=sprite_choice.kind)
    where = f"{choice.name}" + (f" ({choice.soundfont.name})" if choice.soundfont else "")
    if variety == "full":
        where = "+".join([f"sf:{f.stem}" for f in resources.soundfonts] + ["additive"] + (["real"] if resources.sample_dir else []))
    log.info(f"synth: {len(plan)} video{'' if len(plan) == 1 else 's'} into {out} (audio: {where}, sprites: "
             f"{sprite_choice.kind}, variety: {variety}, split: {split})")

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
