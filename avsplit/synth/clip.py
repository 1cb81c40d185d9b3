"""One video of the synthetic dataset: its sound (sources through their recording chains), its
picture (sprites moving with their own sound), and its truth (boxes, onsets, domain).

The video's sound track is the sum of its source WAVs, plus the background noise WAV
(``<stem>.noise.wav``, named by ``truth["noise"]``) when the recording chain added noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsplit.errors import AvsplitError
from avsplit.synth.audio import RendererChoice, _active_rms, balance_sources, frame_rms, loudness, render_additive, render_fluidsynth
from avsplit.synth.chain import apply_source_chain, chain_label, make_noise, random_video_chain
from avsplit.synth.instruments import Category
from avsplit.synth.makers import SoundFont, apply_expression
from avsplit.synth.melody import random_melody
from avsplit.synth.performance import perform
from avsplit.synth.patches import render_patch
from avsplit.synth.physical import render_physical
from avsplit.synth.realtakes import render_take
from avsplit.synth.variety import HELD_OUT, Resources, SourcePlan, pick_background, plan_sources, source_domain

__all__ = ["Settings", "SoundPart", "make_sound", "basic_plans"]


@dataclass(frozen=True)
class Settings:
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
    variety: str = "none"
    split: str = "all"
    resources: Resources = Resources()
    soundfonts: tuple[SoundFont, ...] = ()
    """``variety none``: the SoundFonts to draw from per source, probed for their presets (with
    FluidSynth, at least the renderer's; one: today's behaviour)."""

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))

    @property
    def n_samples(self) -> int:
        return max(1, int(round(self.seconds * self.sample_rate)))


@dataclass
class SoundPart:
    """The sound of one video."""

    sources: list[np.ndarray]
    """Each ``(n_samples,)`` float32 on the 16-bit grid, as written to its WAV."""
    mix: np.ndarray
    """The video's sound track: the sum of ``sources`` plus ``noise``."""
    noise: np.ndarray | None
    melodies: list
    plans: list[SourcePlan]
    performances: list[dict]
    chain_labels: list[str]
    video_chain: dict | None
    background: str


def basic_plans(st: Settings, cats: list[Category], rng: np.random.Generator) -> list[SourcePlan]:
    """``variety none``: today's sources (one renderer; a SoundFont drawn per source when several
    were given), labelled with their domain."""
    plans = []
    glyph = "emoji" if st.sprite_kind == "emoji" else "drawn"
    for cat in cats:
        if st.renderer.name != "fluidsynth":
            plans.append(SourcePlan("additive", glyph=glyph))
            continue
        # a SoundFont with this instrument's preset (none has it: rendering fails with one line)
        fonts = [f for f in st.soundfonts if f.covers(cat)] or list(st.soundfonts)
        font = fonts[int(rng.integers(len(fonts)))] if len(fonts) > 1 else fonts[0]
        held = ("soundfont",) if font.stem in HELD_OUT["soundfont"] else ()
        plans.append(SourcePlan(f"sf:{font.stem}", font, glyph=glyph, held_out=held))
    return plans


def _render_one(st: Settings, cat: Category, plan: SourcePlan, rng: np.random.Generator, melody=None):
    """``(audio at the video's rate, melody, performance description)`` of one source
    (``melody``: already drawn, as ``variety none`` draws all melodies first)."""
    holder: dict = {} if melody is None else {"melody": melody, "info": {}}

    def render(rate: int, n: int) -> np.ndarray:
        if plan.take is not None:
            audio, holder["melody"], holder["info"] = render_take(plan.take, st.resources.sample_dir, rng, rate, n)
            return audio
        melody = holder["melody"]
        if plan.soundfont is not None:
            return render_fluidsynth(plan.soundfont.path, cat, melody, rate, n, plan.fx)
        if plan.patch_set is not None:
            audio = render_patch(plan.patch_set, cat, melody, rate, n, rng)
        else:
            audio = (render_physical if plan.maker == "physical" else render_additive)(cat, melody, rate, n, rng)
        return apply_expression(audio, melody, rate)

    if plan.take is None and melody is None:
        if st.variety == "full":
            holder["melody"], holder["info"] = perform(rng, cat, st.seconds)
        else:
            holder["melody"], holder["info"] = random_melody(rng, cat, st.seconds), {}
    audio = apply_source_chain(render, plan.chain, st.sample_rate, st.n_samples)
    if not np.any(np.abs(audio) > 1e-5):
        where = plan.soundfont.path if plan.soundfont is not None else (plan.patch_set.path if plan.patch_set else None)
        raise AvsplitError(f"the {plan.maker} sound maker produced silence for {cat.name}", where,
                           "try another SoundFont or --soundfont with a complete General MIDI one")
    return audio, holder["melody"], holder["info"]


def make_sound(st: Settings, cats: list[Category], rng_audio: np.random.Generator,
               rng_domain: np.random.Generator) -> SoundPart:
    """Plan the domain, render every source through its chain, level them and mix."""
    full = st.variety == "full"
    if full:
        plans = plan_sources(rng_domain, st.resources, [c.name for c in cats], st.split)
        background = pick_background(rng_domain, st.resources, st.split)
        video_chain = random_video_chain(rng_domain)
    else:
        plans, background, video_chain = basic_plans(st, cats, rng_domain), "textured", None
    drawn = [None] * len(cats) if full else [random_melody(rng_audio, cat, st.seconds) for cat in cats]
    raw, melodies, infos = [], [], []
    for cat, plan, pre in zip(cats, plans, drawn):
        audio, melody, info = _render_one(st, cat, plan, rng_audio, pre)
        raw.append(audio)
        melodies.append(melody)
        infos.append(info)
    if full:
        offset = video_chain["level_db"] + 20.0  # balance_sources levels to -20 dBFS
        gains = [offset] if len(cats) == 1 else [offset + float(g) for g in rng_domain.uniform(-6.0, 6.0, len(cats))]
    else:
        gains = [0.0] if len(cats) == 1 else [float(g) for g in rng_audio.uniform(-3.0, 3.0, size=len(cats))]
    sources, mix = balance_sources(raw, gains)
    noise = None
    if video_chain and "noise" in video_chain:
        noise = make_noise(video_chain["noise"], _active_rms(mix), st.sample_rate, st.n_samples)
        noise = (np.round(np.clip(noise, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32)
        mix = (mix + noise).astype(np.float32)
    labels = [chain_label(p.chain, video_chain, st.sample_rate) for p in plans]
    return SoundPart(sources, mix, noise, melodies, plans, infos, labels, video_chain, background)


def sound_truth(part: SoundPart, order: list[int]) -> tuple[list[dict], dict]:
    """Per-source truth extras (in ``order``: domain, performance, settings) and the generator details."""
    extras = []
    for i in order:
        plan = part.plans[i]
        extra = {"domain": source_domain(plan, part.chain_labels[i]), "performance": part.performances[i]}
        if plan.fx is not None:
            extra["fluidsynth"] = plan.fx
        if plan.chain is not None:
            extra["chain"] = plan.chain
        extras.append(extra)
    return extras, {"video_chain": part.video_chain}


def sounding_level(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame loudness level in [0, 1] and sounding flags of one source."""
    return loudness(frame_rms(audio, sample_rate, fps, n_frames))
