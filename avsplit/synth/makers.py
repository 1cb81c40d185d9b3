"""Sound makers of ``--variety full``: every installed General MIDI SoundFont, the additive
synthesizer, physical models of each instrument family (:mod:`avsplit.synth.physical`, drawn only
for training data) and real recordings (:mod:`avsplit.synth.realtakes`), and random FluidSynth
settings.

A sound maker is named as in the truth's domain: ``sf:<SoundFont file stem>``, ``additive``,
``physical`` or ``real``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit.errors import ConfigError
from avsplit.synth.melody import EXPRESSION, Melody

__all__ = ["SOUNDFONT_GLOBS", "SoundFont", "find_soundfonts", "soundfont_stem", "random_fluid_settings", "apply_expression"]

#: Where SoundFonts are looked for when no ``--soundfont`` is given (Debian's timgm6mb-soundfont,
#: fluid-soundfont-gm, musescore-general-soundfont, opl3-soundfont and others).
SOUNDFONT_GLOBS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/*.sf2",
    "/usr/share/sounds/sf3/*.sf3",
    "/usr/share/soundfonts/*.sf2",
    "/usr/share/soundfonts/*.sf3",
)


@dataclass(frozen=True)
class SoundFont:
    path: Path
    stem: str
    """Name in the domain labels (``sf:<stem>``)."""
    categories: frozenset[str] | None = None
    """The categories it has a preset for (None: not probed, taken to play every one)."""

    def covers(self, category) -> bool:
        """Whether this SoundFont has a preset for ``category`` (a :class:`~avsplit.synth.instruments.Category`)."""
        return self.categories is None or category.name in self.categories


def soundfont_stem(path: Path) -> str:
    return Path(path).stem


def find_soundfonts(explicit: Sequence[str | Path] | None = None) -> list[SoundFont]:
    """The SoundFonts named (each must exist), or every one installed in the usual places.

    Aliases (``default-GM.sf2`` and other links to the same file) count once, under the shortest
    name that is not a ``default*`` alias. Sorted by stem.
    """
    if explicit:
        found = []
        for item in explicit:
            path = Path(item).expanduser().absolute()
            if not path.is_file():
                raise ConfigError("no such SoundFont file", path, "give the path of a General MIDI .sf2/.sf3 file")
            found.append(SoundFont(path, soundfont_stem(path)))
        stems = [f.stem for f in found]
        if len(set(stems)) != len(stems):
            raise ConfigError("two --soundfont files have the same name", None, "give SoundFonts with distinct file names")
        return sorted(found, key=lambda f: f.stem)
    by_target: dict[str, list[Path]] = {}
    for pattern in SOUNDFONT_GLOBS:
        for name in sorted(glob.glob(pattern)):
            path = Path(name)
            if path.is_file():
                by_target.setdefault(os.path.realpath(path), []).append(path)
    fonts = []
    for names in by_target.values():
        plain = [p for p in names if not p.stem.lower().startswith("default")] or names
        best = min(plain, key=lambda p: (len(p.stem), p.stem))
        fonts.append(SoundFont(best, soundfont_stem(best)))
    unique: dict[str, SoundFont] = {}
    for font in sorted(fonts, key=lambda f: (f.stem, str(f.path))):
        unique.setdefault(font.stem, font)
    return list(unique.values())


def random_fluid_settings(rng: np.random.Generator) -> dict:
    """FluidSynth settings for one source: reverb and chorus on or off with random amounts,
    interpolation (0 none, 1 linear, 4 fourth order, 7 seventh order) and gain."""
    fx: dict = {"gain": round(float(rng.uniform(0.2, 1.0)), 3), "interpolation": int(rng.choice((0, 1, 4, 4, 7)))}
    if rng.random() < 0.5:
        fx["reverb"] = {
            "roomsize": round(float(rng.uniform(0.1, 0.95)), 3),
            "damping": round(float(rng.uniform(0.0, 0.9)), 3),
            "width": round(float(rng.uniform(0.0, 100.0)), 2),
            "level": round(float(rng.uniform(0.2, 1.0)), 3),
        }
    if rng.random() < 0.35:
        fx["chorus"] = {
            "nr": int(rng.integers(2, 10)),
            "level": round(float(rng.uniform(0.5, 4.0)), 3),
            "speed": round(float(rng.uniform(0.2, 2.0)), 3),
            "depth": round(float(rng.uniform(2.0, 16.0)), 3),
        }
    return fx


def apply_expression(audio: np.ndarray, melody: Melody, sample_rate: int) -> np.ndarray:
    """Scale ``audio`` by the melody's expression (CC11) curve, linear between events, as the
    additive synthesizer has no controllers. ``audio``: ``(samples,)``."""
    events = [(t, v) for t, c, v in melody.controls if c == EXPRESSION]
    if not events:
        return audio
    times = np.array([t for t, _ in events]) * sample_rate
    values = np.array([v for _, v in events], dtype=np.float64) / 127.0
    curve = np.interp(np.arange(len(audio)), times, values, left=1.0, right=float(values[-1]))
    return (audio * curve).astype(np.float32)
