"""Domains, variety and the leave-out protocol of ``avsplit synth`` (see docs/domains.md).

Every clip's domain is drawn per source (sound maker, SoundFont, FluidSynth settings, recording
chain, glyph style, motion style) and per video (background family) from the video's own seeded
random stream. ``--split`` decides which values may be drawn:

- ``all``: anything installed;
- ``train``: never a held-out value (:data:`HELD_OUT`) nor a held-out real take;
- ``foreign``: every source's sound is held out (the held-out SoundFont, or a held-out real take),
  and each picture axis (glyph, background, motion) takes its held-out value with probability
  :data:`FOREIGN_PICTURE_SHARE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit.errors import ConfigError
from avsplit.synth.chain import CHAIN_STEPS, random_source_chain
from avsplit.synth.instruments import CATEGORY_BY_NAME, Category
from avsplit.synth.makers import SoundFont, random_fluid_settings
from avsplit.synth.patches import PatchSet
from avsplit.synth.realtakes import Take, available_takes

__all__ = ["VARIETIES", "SPLITS", "MAKER_KINDS", "HELD_OUT", "GLYPHS", "GLYPH_STYLES", "BACKGROUNDS", "MOTIONS", "FOREIGN_PICTURE_SHARE",
           "Resources", "SourcePlan", "plan_sources", "pick_background", "domain_of", "source_domain"]

VARIETIES = ("none", "full")
SPLITS = ("all", "train", "foreign")
#: The kinds of sound maker ``--makers`` chooses from.
MAKER_KINDS = ("sf", "patch", "additive", "physical", "real")
#: Values never drawn by ``--split train`` (and the only ones ``--split foreign`` draws on an axis).
HELD_OUT: dict[str, tuple[str, ...]] = {
    "soundfont": ("FluidR3_GM",),
    "glyph": ("outline",),
    "background": ("stripes",),
    "motion": ("rotation",),
}
#: The glyph styles drawn by default (those that render here).
GLYPHS = ("emoji", "outline", "drawn")
#: Every glyph style ``--glyphs`` chooses from: ``mono`` (one-colour ink made from the emoji or the
#: drawn shape) is drawn only when asked for, so the sets made without ``--glyphs`` are unchanged.
GLYPH_STYLES = GLYPHS + ("mono",)
BACKGROUNDS = ("textured", "gradient", "noise", "stripes", "clutter", "blur")
MOTIONS = ("bounce", "sway", "rotation", "pulse", "arm")
FOREIGN_PICTURE_SHARE = 0.5
_REAL_SHARE = 0.25
_ADDITIVE_SHARE = 0.15
_PHYSICAL_SHARE = 0.15


@dataclass(frozen=True)
class Resources:
    """What this run may use (resolved once, warnings given once)."""

    soundfonts: tuple[SoundFont, ...] = ()
    """SoundFonts FluidSynth can load (empty when FluidSynth is missing)."""
    sample_dir: Path | None = None
    glyphs: tuple[str, ...] = ("drawn",)
    """Glyph styles that render here."""
    backgrounds: tuple[str, ...] = BACKGROUNDS
    motions: tuple[str, ...] = MOTIONS
    patch_sets: tuple[PatchSet, ...] = ()
    """GUS patch sets given with ``--patches`` (sound banks beside the SoundFonts)."""
    makers: tuple[str, ...] | None = None
    """The kinds of sound maker (:data:`MAKER_KINDS`) that may be drawn; None: all, by their shares."""


@dataclass(frozen=True)
class SourcePlan:
    """The domain of one source, and the settings to make it."""

    maker: str
    """``sf:<stem>``, ``patch:<name>``, ``additive``, ``physical`` or ``real``."""
    soundfont: SoundFont | None = None
    take: Take | None = None
    fx: dict | None = None
    chain: dict | None = None
    glyph: str = "emoji"
    motion: str = "bounce"
    held_out: tuple[str, ...] = field(default=())
    """Axes on which a held-out value was drawn (``soundfont``, ``real``, ``glyph``, ``motion``)."""
    patch_set: PatchSet | None = None


def _held(axis: str, value: str) -> bool:
    return value in HELD_OUT.get(axis, ())


def _pick_picture(rng: np.random.Generator, axis: str, values: Sequence[str], split: str) -> str:
    """One value of a picture axis under the split's rule."""
    held = [v for v in values if _held(axis, v)]
    if split == "foreign" and held and rng.random() < FOREIGN_PICTURE_SHARE:
        return str(held[int(rng.integers(len(held)))])
    pool = [v for v in values if not _held(axis, v)] if split in ("train", "foreign") else list(values)
    pool = pool or list(values)
    return str(pool[int(rng.integers(len(pool)))])


def pick_background(rng: np.random.Generator, res: Resources, split: str) -> str:
    return _pick_picture(rng, "background", res.backgrounds, split)


Bank = SoundFont | PatchSet


def _bank_maker(bank: Bank) -> str:
    return f"patch:{bank.name}" if isinstance(bank, PatchSet) else f"sf:{bank.stem}"


def _pick_sound(rng: np.random.Generator, res: Resources, category: Category, split: str) -> tuple[str, Bank | None, Take | None]:
    """The sound maker of one source: ``foreign`` draws only held-out sounds; ``train`` and ``all``
    draw a real take, the additive synthesizer, the physical models or a sound bank (a SoundFont or
    a patch set that has a preset or patch for ``category``) by their shares (one number decides;
    with no bank their share goes to the additive synthesizer). ``res.makers`` restricts the kinds
    drawn."""
    fonts = [f for f in res.soundfonts if _allowed(res, "sf") and f.covers(category)]
    name = category.name
    if split == "foreign":
        held_fonts = [f for f in fonts if _held("soundfont", f.stem)]
        held_takes = available_takes(res.sample_dir, name, True) if _allowed(res, "real") else []
        if held_takes and (not held_fonts or rng.random() < 0.4):
            return "real", None, held_takes[int(rng.integers(len(held_takes)))]
        if held_fonts:
            font = held_fonts[int(rng.integers(len(held_fonts)))]
            return f"sf:{font.stem}", font, None
        raise ConfigError(
            f"--split foreign has no held-out sound for {name}: the {', '.join(HELD_OUT['soundfont'])} SoundFont "
            "is not installed (or has no preset for it)"
            + ("" if res.makers is None else " or --makers leaves it out"), None,
            "install fluid-soundfont-gm (or pass it with --soundfont), or leave out this category")
    if split == "train":
        fonts = [f for f in fonts if not _held("soundfont", f.stem)]
    banks: list[Bank] = fonts + [p for p in res.patch_sets if _allowed(res, "patch") and p.covers(category)]
    takes = available_takes(res.sample_dir, name, False if split == "train" else None)
    if res.makers is not None:
        return _pick_restricted(rng, res.makers, banks, takes, name)
    r = rng.random()
    if takes and r < _REAL_SHARE:
        return "real", None, takes[int(rng.integers(len(takes)))]
    if r < _REAL_SHARE + _ADDITIVE_SHARE:
        return "additive", None, None
    if r < _REAL_SHARE + _ADDITIVE_SHARE + _PHYSICAL_SHARE:
        return "physical", None, None
    if not banks:
        return "additive", None, None
    bank = banks[int(rng.integers(len(banks)))]
    return _bank_maker(bank), bank, None


def _allowed(res: Resources, kind: str) -> bool:
    return res.makers is None or kind in res.makers


def _pick_restricted(rng: np.random.Generator, makers: Sequence[str], banks: list, takes: list,
                     category: str) -> tuple[str, Bank | None, Take | None]:
    """A sound maker among the kinds of ``makers`` that can play ``category``, by the usual shares
    (the banks' share split evenly between them)."""
    options: list[tuple[float, tuple]] = []
    if "real" in makers and takes:
        options += [(_REAL_SHARE / len(takes), ("real", None, t)) for t in takes]
    if "additive" in makers:
        options.append((_ADDITIVE_SHARE, ("additive", None, None)))
    if "physical" in makers:
        options.append((_PHYSICAL_SHARE, ("physical", None, None)))
    bank_share = 1.0 - _REAL_SHARE - _ADDITIVE_SHARE - _PHYSICAL_SHARE
    options += [(bank_share / len(banks), (_bank_maker(b), b, None)) for b in banks]
    if not options:
        raise ConfigError(f"no sound maker of --makers {','.join(makers)} can play {category} here", None,
                          "add a kind to --makers (sf needs a SoundFont, patch needs --patches with a patch for it, "
                          "real needs sonic-pi-samples), or leave out this category")
    weights = np.array([w for w, _ in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][1]


def plan_sources(rng: np.random.Generator, res: Resources, categories: Sequence[str], split: str) -> list[SourcePlan]:
    """Full-variety domain of each source of one video (``categories``: their names)."""
    plans = []
    for category in categories:
        maker, bank, take = _pick_sound(rng, res, CATEGORY_BY_NAME[category], split)
        font = bank if isinstance(bank, SoundFont) else None
        patch_set = bank if isinstance(bank, PatchSet) else None
        fx = random_fluid_settings(rng) if font is not None else None
        chain = random_source_chain(rng)
        glyph = _pick_picture(rng, "glyph", res.glyphs, split)
        motion = _pick_picture(rng, "motion", res.motions, split)
        held = []
        if font is not None and _held("soundfont", font.stem):
            held.append("soundfont")
        if take is not None and take.held_out:
            held.append("real")
        held += [axis for axis, value in (("glyph", glyph), ("motion", motion)) if _held(axis, value)]
        plans.append(SourcePlan(maker, font, take, fx, chain, glyph, motion, tuple(held), patch_set))
    return plans


def source_domain(plan: SourcePlan, chain_label: str) -> dict:
    """The per-source domain dict of the truth."""
    return {
        "sound_maker": plan.maker,
        "soundfont": plan.soundfont.stem if plan.soundfont is not None else "none",
        "chain": chain_label,
        "glyph": plan.glyph,
        "motion": plan.motion,
    }


def domain_of(sources: Sequence[dict], plans: Sequence[SourcePlan], background: str) -> dict:
    """The clip's domain from its sources' domains (as drawn: a glyph a font lacks is drawn).

    Per-source values that differ are joined by ``+`` in sorted order; the chain is the union of
    the sources' steps (in the order of :data:`~avsplit.synth.chain.CHAIN_STEPS`). ``split`` is
    ``real`` when a held-out real take sounds, ``foreign`` when any other held-out value is used,
    else ``train``.
    """
    out: dict = {}
    for key in ("sound_maker", "soundfont"):
        out[key] = "+".join(sorted({s[key] for s in sources}))
    steps = {step for s in sources for step in s["chain"].split("+") if step != "clean"}
    out["chain"] = "+".join(step for step in CHAIN_STEPS if step in steps) or "clean"
    out["glyph"] = "+".join(sorted({s["glyph"] for s in sources}))
    out["background"] = background
    out["motion"] = "+".join(sorted({s["motion"] for s in sources}))
    held = any(_held(axis, s[key]) for s in sources for axis, key in (("soundfont", "soundfont"), ("glyph", "glyph"),
                                                                      ("motion", "motion")))
    held = held or _held("background", background)
    real = any(p.take is not None and p.take.held_out for p in plans)
    out["split"] = "real" if real else ("foreign" if held else "train")
    return out
