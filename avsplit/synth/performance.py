"""Varied performances (``--variety full``): tempo, articulation, chords, dynamics, expression,
vibrato and pitch bends, repeated notes, long tones and silences, drawn per source.

:func:`perform` returns a :class:`~avsplit.synth.melody.Melody` (notes plus controller events)
and a small dict describing the performance, recorded in the truth.
"""

from __future__ import annotations

import numpy as np

from avsplit.synth.instruments import Category
from avsplit.synth.melody import EXPRESSION, MODULATION, PITCH_BEND, _SCALES, Melody, Note

__all__ = ["perform", "ARTICULATIONS", "POLYPHONIC", "BENDING"]

#: Held share of each note's slot, by articulation.
ARTICULATIONS: dict[str, tuple[float, float]] = {
    "staccato": (0.15, 0.4),
    "detached": (0.5, 0.75),
    "normal": (0.75, 0.95),
    "legato": (0.97, 1.08),
}
#: Categories that can play chords or double stops, with the chance per note.
POLYPHONIC: dict[str, float] = {"piano": 0.45, "guitar": 0.5, "accordion": 0.45, "banjo": 0.35, "violin": 0.15}
#: Categories whose pitch bends (scoops, falls, slides) are idiomatic.
BENDING = frozenset({"guitar", "violin", "trumpet", "saxophone", "flute", "horn", "banjo"})
_SUSTAINED = frozenset({"violin", "trumpet", "saxophone", "flute", "accordion", "horn"})
_VELOCITY_SHAPES = ("flat", "rising", "falling", "accents", "random")


def _velocity(shape: str, base: int, i: int, n: int, accent_every: int, rng: np.random.Generator) -> int:
    if shape == "rising":
        v = base - 25 + 50 * i / max(1, n - 1)
    elif shape == "falling":
        v = base + 25 - 50 * i / max(1, n - 1)
    elif shape == "accents":
        v = base + (22 if i % accent_every == 0 else -10)
    elif shape == "random":
        v = base + rng.integers(-30, 31)
    else:
        v = base
    return int(np.clip(v + rng.integers(-6, 7), 20, 127))


def _pitch_set(rng: np.random.Generator, category: Category) -> list[int]:
    root = int(rng.integers(0, 12))
    scale = _SCALES[int(rng.integers(0, len(_SCALES)))]
    return [k for k in range(category.low, category.high + 1) if (k - root) % 12 in scale]


def _next_index(rng: np.random.Generator, idx: int, n: int, repeat: float) -> int:
    if rng.random() < repeat:
        return idx
    idx += int(rng.choice((-4, -3, -2, -1, -1, 1, 1, 2, 3, 5)))
    if idx < 0:
        idx = -idx
    if idx >= n:
        idx = 2 * (n - 1) - idx
    return int(np.clip(idx, 0, n - 1))


def _controls_for_note(rng, note: Note, category: Category, style: dict, out: list) -> None:
    """Pitch bends and vibrato (modulation) of one note, appended to ``out``."""
    length = note.end - note.start
    if category.name in BENDING and style["bends"] and rng.random() < style["bends"] and length > 0.15:
        depth = int(rng.integers(1200, 4096)) * (1 if rng.random() < 0.5 else -1)
        if rng.random() < 0.5:  # scoop into the note
            out += [(note.start, PITCH_BEND, -depth), (note.start + min(0.12, length / 3), PITCH_BEND, 0)]
        else:  # fall or slide at its end
            t0 = note.start + length * 0.6
            for k in range(1, 5):
                out.append((t0 + (note.end - t0) * k / 4, PITCH_BEND, int(depth * k / 4)))
            out.append((note.end + 0.01, PITCH_BEND, 0))
    if style["vibrato"] and category.name in _SUSTAINED and length > 0.4:
        out += [(note.start, MODULATION, 0), (note.start + 0.25, MODULATION, style["vibrato"]), (note.end, MODULATION, 0)]


def perform(rng: np.random.Generator, category: Category, seconds: float) -> tuple[Melody, dict]:
    """A varied performance of ``category`` that fits in ``seconds``: ``(melody, description)``."""
    bpm = float(rng.uniform(50.0, 200.0))
    beat = 60.0 / bpm
    articulation = str(rng.choice(list(ARTICULATIONS)))
    shape = str(rng.choice(_VELOCITY_SHAPES))
    style = {
        "bends": float(rng.choice((0.0, 0.15, 0.4))),
        "vibrato": int(rng.choice((0, 0, 40, 80, 127))),
        "repeat": float(rng.choice((0.05, 0.2, 0.5))),
        "long_tones": float(rng.choice((0.0, 0.1, 0.3))),
        "crescendo": bool(rng.random() < 0.5),
    }
    chords = POLYPHONIC.get(category.name, 0.0) * float(rng.uniform(0.3, 1.5))
    end_limit = max(0.1, seconds - 0.05)
    t = float(rng.uniform(0.0, min(1.5, seconds * 0.3)))
    percussion = category.percussion
    if percussion:
        keys = np.asarray(category.drum_keys)
        weights = np.asarray(category.drum_weights, dtype=np.float64)
        weights = weights / weights.sum()
        pitches: list[int] = []
        idx = 0
    else:
        pitches = _pitch_set(rng, category)
        idx = int(rng.integers(len(pitches) // 4, max(len(pitches) // 4 + 1, 3 * len(pitches) // 4)))
    notes: list[Note] = []
    controls: list[tuple[float, int, int]] = []
    while t < end_limit - 0.1:
        n_notes = int(rng.integers(2, 12))
        base = int(rng.integers(50, 118))
        accent_every = int(rng.choice((2, 3, 4)))
        phrase_start = t
        for i in range(n_notes):
            slots = (0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0) if not percussion else (0.25, 0.5, 0.5, 1.0)
            slot = float(rng.choice(slots)) * beat
            if not percussion and rng.random() < style["long_tones"]:
                slot = float(rng.uniform(1.5, 4.0))
            if t + 0.5 * slot > end_limit:
                break
            held = slot * float(rng.uniform(*ARTICULATIONS[articulation]))
            end = min(t + max(held, 0.04), end_limit)
            velocity = _velocity(shape, base, i, n_notes, accent_every, rng)
            if percussion:
                chord: tuple[int, ...] = (int(rng.choice(keys, p=weights)),)
                if rng.random() < 0.15:
                    chord = tuple(sorted({chord[0], int(rng.choice(keys, p=weights))}))
            else:
                idx = _next_index(rng, idx, len(pitches), style["repeat"])
                chord = (pitches[idx],)
                if chords and rng.random() < chords:
                    steps = [2, 4] if category.name != "violin" else [int(rng.choice((2, 3, 4)))]
                    extra = steps[: int(rng.integers(1, len(steps) + 1))]
                    chord = chord + tuple(pitches[idx + j] for j in extra if idx + j < len(pitches))
            note = Note(round(t, 6), round(end, 6), chord, velocity)
            notes.append(note)
            _controls_for_note(rng, note, category, style, controls)
            t += slot
        if style["crescendo"] and t > phrase_start + 0.5:
            lo, hi = int(rng.integers(30, 80)), 127
            a, b = (lo, hi) if rng.random() < 0.6 else (hi, lo)
            for k in range(9):
                controls.append((phrase_start + (t - phrase_start) * k / 8, EXPRESSION, int(a + (b - a) * k / 8)))
        t += float(rng.choice((0.2, 0.5, 1.0, 2.0))) * float(rng.uniform(0.6, 1.4)) * category.rest_scale
    if not notes:
        key = category.drum_keys[0] if percussion else (category.low + category.high) // 2
        notes.append(Note(0.0, round(min(0.5, end_limit), 6), (key,), 100))
    controls.sort(key=lambda c: (c[0], c[1]))
    description = {"bpm": round(bpm, 1), "articulation": articulation, "velocity": shape,
                   "chords": round(chords, 3), **style}
    return Melody(tuple(notes), tuple((round(t, 6), c, v) for t, c, v in controls)), description
