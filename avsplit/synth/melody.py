"""Random melodies: phrases of notes in a scale (or drum-kit hits), separated by real rests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsplit.synth.instruments import Category

__all__ = ["Note", "Melody", "random_melody", "PITCH_BEND", "EXPRESSION", "MODULATION"]

#: Controller numbers of :attr:`Melody.controls` (MIDI CCs; -1 is the pitch wheel).
PITCH_BEND = -1
EXPRESSION = 11
MODULATION = 1

_SCALES = (
    (0, 2, 4, 5, 7, 9, 11),  # major
    (0, 2, 3, 5, 7, 8, 10),  # natural minor
    (0, 2, 4, 7, 9),  # major pentatonic
    (0, 3, 5, 7, 10),  # minor pentatonic
    (0, 2, 3, 5, 7, 9, 10),  # dorian
)
_STEPS = (-3, -2, -1, -1, -1, 0, 1, 1, 1, 2, 3)


@dataclass(frozen=True)
class Note:
    """One note (or chord, or drum hit): keys held from ``start`` to ``end`` seconds."""

    start: float
    end: float
    keys: tuple[int, ...]
    velocity: int


@dataclass(frozen=True)
class Melody:
    notes: tuple[Note, ...]
    controls: tuple[tuple[float, int, int], ...] = ()
    """Controller events ``(seconds, controller, value)`` sorted by time: MIDI CC numbers
    (1 modulation = vibrato depth, 11 expression, 0..127), or ``PITCH_BEND`` with a value in
    -8192..8191 (a whole tone each way)."""

    @property
    def onsets(self) -> list[float]:
        """Sorted, distinct note start times in seconds."""
        return sorted({round(n.start, 4) for n in self.notes})


def random_melody(rng: np.random.Generator, category: Category, seconds: float) -> Melody:
    """A melody for ``category`` that fits in ``seconds``.

    Notes come in phrases of 2-6 notes (a phrase lasts at most 40% of the clip, at least 1 s),
    each phrase followed by a rest of about half a second to a second and a half, so the source
    falls silent several times. Pitches walk through a random scale within the instrument's
    range; percussion picks kit keys by weight.
    """
    beat = float(rng.uniform(0.2, 0.42))
    end_limit = max(0.1, seconds - 0.05)
    if rng.random() < 0.25:
        t = float(rng.uniform(0.6, 1.5))
    else:
        t = float(rng.uniform(0.0, 0.6))
    t = min(t, max(0.0, seconds * 0.3))

    if category.percussion:
        keys = np.asarray(category.drum_keys)
        weights = np.asarray(category.drum_weights, dtype=np.float64)
        weights = weights / weights.sum()
        pitches = None
    else:
        root = int(rng.integers(0, 12))
        scale = _SCALES[int(rng.integers(0, len(_SCALES)))]
        pitches = [k for k in range(category.low, category.high + 1) if (k - root) % 12 in scale]
        idx = int(rng.integers(len(pitches) // 4, max(len(pitches) // 4 + 1, 3 * len(pitches) // 4)))

    max_phrase = max(1.0, 0.4 * seconds)
    notes: list[Note] = []
    done = False
    while not done:
        phrase_start = t
        base_velocity = int(rng.integers(72, 112))
        for i in range(int(rng.integers(2, 7))):
            slot = float(rng.choice(category.note_beats)) * beat
            if t + 0.5 * slot > end_limit:
                done = True
                break
            if t - phrase_start + slot > max_phrase and i >= 1:
                break
            held = slot * float(rng.uniform(*category.legato))
            end = min(t + held, end_limit)
            if end - t < 0.05:
                done = True
                break
            velocity = int(np.clip(base_velocity + (12 if i == 0 else 0) + int(rng.integers(-12, 13)), 40, 127))
            if pitches is None:
                chord: tuple[int, ...] = (int(rng.choice(keys, p=weights)),)
            else:
                idx += int(rng.choice(_STEPS))
                if idx < 0:
                    idx = -idx
                if idx >= len(pitches):
                    idx = 2 * (len(pitches) - 1) - idx
                idx = int(np.clip(idx, 0, len(pitches) - 1))
                chord = (pitches[idx],)
                if category.chords and rng.random() < category.chords:
                    extra = [idx + 2, idx + 4][: int(rng.integers(1, 3))]
                    chord = chord + tuple(pitches[j] for j in extra if j < len(pitches))
            notes.append(Note(round(t, 6), round(end, 6), chord, velocity))
            t += slot
        t += float(rng.uniform(0.45, 1.3)) * category.rest_scale
        if t >= end_limit - 0.1:
            done = True
    if not notes:
        key = category.drum_keys[0] if category.percussion else (category.low + category.high) // 2
        notes.append(Note(0.0, round(min(0.5, end_limit), 6), (key,), 100))
    return Melody(tuple(notes))
