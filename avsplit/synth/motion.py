"""Motion styles of ``--variety full``, each tied to the sound (loudness level per frame in
[0, 1], 0 = silent, and note onsets); at level 0 with no recent onset the pose is the rest pose.

- ``bounce``: today's motion (:func:`~avsplit.synth.scene.instrument_motion`): lift, sway and
  growth with the level, a jolt at each onset;
- ``sway``: a wide rocking whose amplitude follows the level;
- ``rotation``: rotation kicks: a sharp turn at each onset, alternating sides, decaying;
- ``pulse``: the size pulses at each onset and swells with the level;
- ``arm``: a strumming or bowing arm that swings at each onset (a stroke the other way) and
  saws back and forth while the sound lasts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from avsplit.synth.scene import Motion, _jolts, instrument_motion

__all__ = ["STYLES", "styled_motion"]


def _sway(level, jolt, side, t, rng):
    n = len(level)
    amp, hz = rng.uniform(10.0, 20.0), rng.uniform(0.8, 2.0)
    angle = amp * level * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi)) + 3.0 * jolt * side
    shift = rng.uniform(0.04, 0.1) * level * np.sin(2 * np.pi * hz * t)
    return Motion(0.02 * level, angle, np.ones(n), shift)


def _rotation(level, jolt, side, t, rng):
    kick = rng.uniform(12.0, 25.0)
    return Motion(0.02 * jolt, kick * jolt * side + 2.0 * level, 1.0 + 0.02 * level, np.zeros(len(level)))


def _pulse(level, jolt, side, t, rng):
    n = len(level)
    return Motion(np.zeros(n), np.zeros(n), 1.0 + rng.uniform(0.1, 0.2) * level + rng.uniform(0.15, 0.3) * jolt, np.zeros(n))


def _arm(level, jolt, side, t, rng):
    saw = rng.uniform(1.5, 3.0)
    stroke = rng.uniform(25.0, 45.0)
    arm = stroke * jolt * side + 15.0 * level * np.sin(2 * np.pi * saw * t)
    return Motion(0.03 * level + 0.03 * jolt, 2.0 * jolt * side, 1.0 + 0.03 * level, np.zeros(len(level)), arm)


STYLES = {"sway": _sway, "rotation": _rotation, "pulse": _pulse, "arm": _arm}


def styled_motion(style: str, level: np.ndarray, onsets: Sequence[float], fps: float, rng: np.random.Generator) -> Motion:
    """Motion of one object in ``style`` (``bounce``, ``sway``, ``rotation``, ``pulse``, ``arm``)."""
    if style == "bounce":
        return instrument_motion(level, onsets, fps, rng)
    level = np.asarray(level, dtype=np.float64)
    jolt, side = _jolts(onsets, fps, len(level))
    jolt = jolt * (level > 0)
    t = np.arange(len(level)) / fps
    return STYLES[style](level, jolt, side, t, rng)
