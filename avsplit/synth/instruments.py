"""The instrument categories of the synthetic dataset, and the silent distractor objects.

Each category carries everything the generator needs to make one source: a General MIDI
program (or a percussion kit with the keys to play), a playing range, melody habits, an emoji
glyph, a drawn-shape fallback (shape + colour, distinct per category) and a timbre for the
built-in additive synthesizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from avsplit.errors import ConfigError

__all__ = ["Timbre", "Category", "Distractor", "CATEGORIES", "CATEGORY_BY_NAME", "DISTRACTORS", "category_names", "resolve_categories"]


@dataclass(frozen=True)
class Timbre:
    """Additive-synthesis recipe of one category (used when FluidSynth is not available)."""

    partials: tuple[float, ...]
    """Amplitudes of the harmonics 1, 2, 3, ... (or of the ``ratios`` partials)."""
    ratios: tuple[float, ...] | None = None
    """Frequency ratios of the partials to the fundamental; None means harmonic (1, 2, 3, ...)."""
    attack: float = 0.01
    """Seconds to full level."""
    decay: float | None = None
    """Time constant (s) of an exponential decay while the key is held (plucked/struck sounds);
    None for sustained sounds that hold ``sustain`` until release."""
    sustain: float = 1.0
    release: float = 0.08
    """Time constant (s) of the fade after the note ends."""
    bright_decay: float = 0.0
    """Extra decay rate per partial number (upper partials die sooner, as on a plucked string)."""
    vibrato: tuple[float, float] = (0.0, 0.0)
    """(depth in cents, rate in Hz), faded in over the note."""
    noise: float = 0.0
    """Share of filtered noise (breath, bow, drum skin)."""
    tremolo: tuple[float, float] = (0.0, 0.0)
    """(depth 0..1, rate in Hz) amplitude modulation (the bellows of an accordion)."""


@dataclass(frozen=True)
class Category:
    """One instrument category."""

    name: str
    program: int
    """General MIDI program number (0-based, as FluidSynth takes it)."""
    emoji: str
    shape: str
    """Drawn fallback: the pictogram drawn when no emoji font is available."""
    colour: tuple[int, int, int]
    timbre: Timbre
    low: int = 48
    high: int = 84
    """Playing range as MIDI keys (inclusive)."""
    bank: int = 0
    """SoundFont bank: 0 for melodic instruments, 128 for a percussion kit."""
    drum_keys: tuple[int, ...] = ()
    """For percussion: the kit keys to play (and their weights, see ``drum_weights``)."""
    drum_weights: tuple[float, ...] = ()
    chords: float = 0.0
    """Probability that a note is played as a two- or three-note chord."""
    note_beats: tuple[float, ...] = (0.5, 1.0, 1.0, 1.5, 2.0)
    """Note lengths to choose from, in beats."""
    legato: tuple[float, float] = (0.75, 0.95)
    """Range of the held share of each note's slot."""
    rest_scale: float = 1.0
    """Longer rests for instruments whose notes ring on after their end."""

    @property
    def percussion(self) -> bool:
        return self.bank == 128


# Drum-kit keys (General MIDI percussion map).
_KICK, _SNARE, _SNARE2, _FLOOR_TOM_LO, _FLOOR_TOM_HI, _LOW_TOM, _LOW_MID_TOM, _HI_MID_TOM, _HIGH_TOM = (
    36, 38, 40, 41, 43, 45, 47, 48, 50,
)
_HI_BONGO, _LOW_BONGO, _MUTE_CONGA, _OPEN_CONGA, _LOW_CONGA = 60, 61, 62, 63, 64

CATEGORIES: tuple[Category, ...] = (
    Category(
        "piano", 0, "\U0001F3B9", "keys", (245, 245, 245),
        Timbre((1.0, 0.55, 0.3, 0.22, 0.12, 0.08, 0.05, 0.03), attack=0.004, decay=0.9, release=0.12, bright_decay=0.35),
        low=45, high=84, chords=0.25, legato=(0.8, 0.98),
    ),
    Category(
        "guitar", 27, "\U0001F3B8", "guitar", (215, 45, 40),
        Timbre((1.0, 0.7, 0.45, 0.3, 0.2, 0.12, 0.08), attack=0.003, decay=0.6, release=0.08, bright_decay=0.6),
        low=40, high=76, chords=0.2,
    ),
    Category(
        "violin", 40, "\U0001F3BB", "violin", (150, 80, 30),
        Timbre((1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08), attack=0.07, sustain=0.85, release=0.1,
               vibrato=(18.0, 5.5), noise=0.03),
        low=55, high=88, note_beats=(1.0, 1.5, 2.0, 2.0, 3.0),
    ),
    Category(
        "trumpet", 56, "\U0001F3BA", "trumpet", (235, 185, 35),
        Timbre((0.7, 1.0, 0.9, 0.7, 0.5, 0.35, 0.22, 0.12), attack=0.03, sustain=0.9, release=0.05, vibrato=(8.0, 5.0)),
        low=55, high=82,
    ),
    Category(
        "saxophone", 65, "\U0001F3B7", "saxophone", (40, 160, 165),
        Timbre((1.0, 0.5, 0.75, 0.35, 0.5, 0.2, 0.25, 0.1), attack=0.035, sustain=0.85, release=0.07,
               vibrato=(12.0, 4.8), noise=0.05),
        low=49, high=80,
    ),
    Category(
        "flute", 73, "\U0001FA88", "flute", (160, 185, 230),
        Timbre((1.0, 0.25, 0.1, 0.05), attack=0.05, sustain=0.9, release=0.06, vibrato=(10.0, 5.0), noise=0.08),
        low=60, high=93,
    ),
    Category(
        "accordion", 21, "\U0001FA97", "accordion", (40, 155, 70),
        Timbre((1.0, 0.9, 0.8, 0.7, 0.55, 0.45, 0.35, 0.25, 0.18, 0.1), attack=0.03, sustain=0.95, release=0.05,
               tremolo=(0.12, 6.5)),
        low=53, high=81, chords=0.3,
    ),
    Category(
        "banjo", 105, "\U0001FA95", "banjo", (225, 200, 150),
        Timbre((1.0, 0.8, 0.7, 0.55, 0.4, 0.3, 0.2, 0.12), attack=0.002, decay=0.28, release=0.05, bright_decay=0.9),
        low=48, high=79, chords=0.15, note_beats=(0.5, 0.5, 1.0, 1.0),
    ),
    Category(
        "drum", 0, "\U0001F941", "drum", (45, 85, 205),
        Timbre((1.0, 0.5, 0.25), ratios=(1.0, 1.59, 2.14), attack=0.002, decay=0.16, release=0.04, noise=0.45),
        bank=128,
        drum_keys=(_KICK, _SNARE, _SNARE2, _FLOOR_TOM_LO, _FLOOR_TOM_HI, _LOW_TOM, _LOW_MID_TOM, _HI_MID_TOM, _HIGH_TOM),
        drum_weights=(3, 3, 1, 1, 1, 1, 1, 1, 1),
        note_beats=(0.5, 0.5, 1.0, 1.0, 1.5),
    ),
    Category(
        "djembe", 0, "\U0001FA98", "djembe", (195, 105, 45),
        Timbre((1.0, 0.6, 0.3), ratios=(1.0, 1.5, 2.3), attack=0.002, decay=0.12, release=0.03, noise=0.3),
        bank=128,
        drum_keys=(_HI_BONGO, _LOW_BONGO, _MUTE_CONGA, _OPEN_CONGA, _LOW_CONGA),
        drum_weights=(1, 1, 1, 2, 2),
        note_beats=(0.5, 0.5, 1.0, 1.0),
    ),
    Category(
        "bell", 14, "\U0001F514", "bell", (250, 215, 40),
        Timbre((1.0, 0.6, 0.45, 0.3, 0.2), ratios=(1.0, 2.0, 2.76, 5.4, 8.93), attack=0.002, decay=0.7, release=0.25),
        low=60, high=84, note_beats=(1.0, 2.0, 2.0, 3.0), rest_scale=1.6,
    ),
    Category(
        "horn", 60, "\U0001F4EF", "horn", (140, 60, 170),
        Timbre((1.0, 0.7, 0.45, 0.25, 0.12, 0.06), attack=0.06, sustain=0.9, release=0.1, vibrato=(5.0, 4.5)),
        low=41, high=77, note_beats=(1.0, 1.5, 2.0, 2.0, 3.0),
    ),
)


@dataclass(frozen=True)
class Distractor:
    """A silent object that moves on its own rhythm."""

    name: str
    emoji: str
    shape: str
    colour: tuple[int, int, int]


DISTRACTORS: tuple[Distractor, ...] = (
    Distractor("ball", "\u26BD", "ball", (240, 240, 240)),
    Distractor("flower", "\U0001F33C", "flower", (250, 200, 40)),
    Distractor("chick", "\U0001F424", "chick", (255, 220, 60)),
    Distractor("balloon", "\U0001F388", "balloon", (225, 40, 60)),
    Distractor("star", "\u2B50", "star", (255, 200, 30)),
    Distractor("butterfly", "\U0001F98B", "butterfly", (240, 130, 30)),
    Distractor("apple", "\U0001F34E", "apple", (200, 30, 30)),
)

#: Each category by its name.
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
_ALIASES = {"sax": "saxophone", "drums": "drum", "keyboard": "piano", "bells": "bell", "french horn": "horn"}


def category_names() -> list[str]:
    """Names of all categories, in table order."""
    return [c.name for c in CATEGORIES]


def resolve_categories(names: Sequence[str] | None) -> tuple[Category, ...]:
    """The categories named (case-insensitive, duplicates dropped), or all of them for None/empty.

    An unknown name raises :class:`ConfigError` listing the valid ones.
    """
    if not names:
        return CATEGORIES
    chosen: list[Category] = []
    for raw in names:
        key = str(raw).strip().lower()
        if not key:
            continue
        key = _ALIASES.get(key, key)
        if key not in CATEGORY_BY_NAME:
            raise ConfigError(
                f"unknown instrument category {raw!r}", None, f"choose from: {', '.join(category_names())}"
            )
        if CATEGORY_BY_NAME[key] not in chosen:
            chosen.append(CATEGORY_BY_NAME[key])
    if not chosen:
        return CATEGORIES
    return tuple(chosen)
