"""Sampled instruments from GUS patch sets (Debian's ``freepats``: recordings of real instruments
as wavetable samples), played as a sampler plays them: one more sound maker, ``patch:<set name>``.

A patch set is a folder laid out as FreePats: ``Tone_000/NNN_<name>.pat`` for General MIDI
program NNN (0-based) and ``Drum_000/NNN_<name>.pat`` for percussion key NNN. A ``.pat`` file
(``GF1PATCH110``) holds one or more samples, each for a range of pitches, with its root pitch,
sample rate and loop. A note plays the sample whose range holds its pitch, resampled to the pitch
(pitch bends and vibrato included), looping while the key is held, then fading out; a drum hit
plays its sample once at its own pitch. Patch sets are used only when given (``synth --patches``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avsplit.errors import ConfigError
from avsplit.synth.instruments import Category
from avsplit.synth.melody import MODULATION, PITCH_BEND, Melody

__all__ = ["PatchSample", "PatchSet", "read_patch", "find_patch_set", "render_patch"]

_MAGIC = (b"GF1PATCH110\x00", b"GF1PATCH100\x00")
_HEADER, _INSTRUMENT, _LAYER, _SAMPLE = 129, 63, 47, 96
_SAMPLE_FIELDS = struct.Struct("<7sBIIIHIIIhB")  # name, fractions, size, loop start/end, rate, low/high/root mHz, tune, balance
_MODE_16BIT, _MODE_UNSIGNED, _MODE_LOOP, _MODE_PINGPONG = 1, 2, 4, 8
_VIBRATO_CENTS = 50.0  # CC1 (modulation) at 127, as General MIDI synthesizers default
_VIBRATO_HZ = 5.5
_FILE = re.compile(r"^(\d{3})_.*\.pat$", re.IGNORECASE)


@dataclass(frozen=True)
class PatchSample:
    """One sample of a patch: ``data`` float32 ``(n,)`` in [-1, 1] at ``rate`` Hz, played for pitches
    from ``low_hz`` to ``high_hz``, recorded at ``root_hz``; ``loop`` (start, end) sample indices or
    None; ``pingpong`` when the loop runs forth and back."""

    data: np.ndarray
    rate: int
    low_hz: float
    high_hz: float
    root_hz: float
    loop: tuple[int, int] | None
    pingpong: bool = False


def _bad(path: Path, why: str) -> ConfigError:
    return ConfigError(f"not a usable GUS patch ({why})", path, "give a patch set of GF1PATCH110 .pat files, e.g. Debian's freepats")


def read_patch(path: str | Path) -> tuple[PatchSample, ...]:
    """The samples of the first layer of a ``.pat`` file, in file order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the patch ({exc.strerror or exc})", path, "check the patch set folder") from exc
    if len(raw) < _HEADER + _INSTRUMENT + _LAYER or raw[:12] not in _MAGIC:
        raise _bad(path, "no GF1PATCH header")
    pos = _HEADER + _INSTRUMENT
    count = raw[pos + 6]
    pos += _LAYER
    samples = []
    for _ in range(count):
        if pos + _SAMPLE > len(raw):
            raise _bad(path, "truncated sample header")
        _, _, size, loop_start, loop_end, rate, low, high, root, _, _ = _SAMPLE_FIELDS.unpack_from(raw, pos)
        modes = raw[pos + 55]
        data_at = pos + _SAMPLE
        if data_at + size > len(raw) or rate <= 0 or root <= 0:
            raise _bad(path, "truncated or malformed sample")
        width = 2 if modes & _MODE_16BIT else 1
        values = np.frombuffer(raw, dtype=(np.dtype("<u2") if modes & _MODE_UNSIGNED else np.dtype("<i2")) if width == 2
                               else (np.uint8 if modes & _MODE_UNSIGNED else np.int8),
                               count=size // width, offset=data_at).astype(np.float32)
        if modes & _MODE_UNSIGNED:
            values -= 2.0 ** (8 * width - 1)
        values /= 2.0 ** (8 * width - 1)
        loop = (loop_start // width, loop_end // width) if modes & _MODE_LOOP else None
        if loop is not None and not 0 <= loop[0] < loop[1] <= len(values):
            loop = None
        samples.append(PatchSample(values, int(rate), low / 1000.0, high / 1000.0, root / 1000.0, loop,
                                   bool(modes & _MODE_PINGPONG)))
        pos = data_at + size
    if not samples:
        raise _bad(path, "no samples")
    return tuple(samples)


_cached_patch = lru_cache(maxsize=64)(read_patch)


@dataclass(frozen=True)
class PatchSet:
    """A GUS patch set folder: ``tones`` General MIDI program -> ``.pat`` file, ``drums`` percussion
    key -> ``.pat`` file. Named ``patch:<name>`` in the truth's domain."""

    name: str
    path: Path
    tones: tuple[tuple[int, str], ...]
    drums: tuple[tuple[int, str], ...]

    def file_for(self, category: Category, key: int | None = None) -> Path | None:
        """The patch that plays ``category`` (a drum category: its kit ``key``), or None."""
        table = dict(self.drums if category.percussion else self.tones)
        name = table.get(key if category.percussion else category.program)
        return None if name is None else self.path / name

    def covers(self, category: Category) -> bool:
        """Whether every sound ``category`` makes has a patch here."""
        if category.percussion:
            return all(self.file_for(category, k) is not None for k in category.drum_keys)
        return self.file_for(category) is not None


def _numbered(folder: Path) -> tuple[tuple[int, str], ...]:
    found: dict[int, str] = {}
    for item in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _FILE.match(item.name)
        if match and item.is_file():
            found.setdefault(int(match.group(1)), f"{folder.name}/{item.name}")
    return tuple(sorted(found.items()))


def find_patch_set(folder: str | Path) -> PatchSet:
    """The patch set in ``folder`` (FreePats layout: ``Tone_000/``, ``Drum_000/``)."""
    path = Path(folder).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError("no such patch set folder", path, "give a GUS patch set folder such as /usr/share/midi/freepats "
                          "(Debian package freepats)")
    tones, drums = _numbered(path / "Tone_000"), _numbered(path / "Drum_000")
    if not tones and not drums:
        raise ConfigError("no patches found (expected Tone_000/NNN_*.pat and Drum_000/NNN_*.pat)", path,
                          "give a folder laid out as FreePats, e.g. /usr/share/midi/freepats")
    return PatchSet(path.name, path, tones, drums)


# ------------------------------------------------------------------------------------------ playing


def _control_curve(melody: Melody, controller: int, rate: int, n: int, scale: float) -> np.ndarray:
    """A controller's value (held from event to event, 0 before the first), times ``scale``: ``(n,)``."""
    events = [(t, v) for t, c, v in melody.controls if c == controller]
    curve = np.zeros(n, np.float64)
    for t, value in events:
        curve[min(n, max(0, int(round(t * rate)))):] = value * scale
    return curve


def _positions(step: np.ndarray, sample: PatchSample) -> np.ndarray:
    """Read positions (fractional sample indices) of a note from its per-output-sample ``step``
    ``(m,)``: straight through the sample, then round the loop (forth and back for ``pingpong``)
    from the loop's end on, also while the note fades out; past the end of a sample without a
    loop: ``-1`` (silence)."""
    pos = np.concatenate([[0.0], np.cumsum(step[:-1])])
    if sample.loop is None:
        return np.where(pos <= len(sample.data) - 1, pos, -1.0)
    start, end = sample.loop
    length = max(end - start, 1)
    over = pos >= end
    if sample.pingpong:
        phase = np.mod(pos - start, 2 * length)
        wrapped = start + np.where(phase < length, phase, 2 * length - phase)
    else:
        wrapped = start + np.mod(pos - start, length)
    return np.where(over, wrapped, pos)


def _pick_sample(samples: tuple[PatchSample, ...], hz: float) -> PatchSample:
    inside = [s for s in samples if s.low_hz <= hz <= s.high_hz]
    return inside[0] if inside else min(samples, key=lambda s: abs(np.log(hz / s.root_hz)))


def _play(sample: PatchSample, hz: float | None, bend: np.ndarray, seconds: float, release: float,
          rate: int, drum: bool) -> np.ndarray:
    """One note: ``(m,)`` float64. ``hz`` None plays the sample at its own pitch; ``bend`` ``(m,)`` the
    pitch offset in semitones (bends and vibrato)."""
    held = max(1, int(round(seconds * rate)))
    tail = int(round(5 * release * rate))
    base = sample.rate / rate * (1.0 if hz is None else hz / sample.root_hz)
    natural = int((len(sample.data) - 1) / base) + 1  # output samples of one pass through the sample
    m = natural if drum else (held + tail if sample.loop is not None else min(natural, held + tail))
    step = base * 2.0 ** (np.resize(bend, m) / 12.0) if len(bend) else np.full(m, base)
    pos = _positions(step, sample)
    out = np.interp(np.clip(pos, 0, None), np.arange(len(sample.data)), sample.data)
    out[pos < 0] = 0.0
    if not drum and m > held:
        out[held:] *= np.exp(-np.arange(m - held) / (release * rate))
    return out


def render_patch(patch_set: PatchSet, category: Category, melody: Melody, sample_rate: int, n_samples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Render ``melody`` with ``patch_set``'s patch for ``category``: ``(n_samples,)`` float32.

    Velocity sets the level (squared, as General MIDI's volume curve); pitch bends and vibrato
    (modulation) follow the melody's controllers; after each note the sound fades with a drawn
    time constant of 20-120 ms. Expression is applied by the caller.
    """
    release = float(rng.uniform(0.02, 0.12))
    bend = (_control_curve(melody, PITCH_BEND, sample_rate, n_samples, 2.0 / 8192.0)
            + _control_curve(melody, MODULATION, sample_rate, n_samples, _VIBRATO_CENTS / 100.0 / 127.0)
            * np.sin(2 * np.pi * _VIBRATO_HZ * np.arange(n_samples) / sample_rate))
    out = np.zeros(n_samples, np.float64)
    drum = category.percussion
    for note in melody.notes:
        start = int(round(note.start * sample_rate))
        if start >= n_samples:
            continue
        loud = (note.velocity / 127.0) ** 2
        for key in note.keys:
            path = patch_set.file_for(category, key)
            if path is None:
                raise ConfigError(f"the patch set {patch_set.name} has no patch for {category.name}", patch_set.path,
                                  "leave this category out, or use another sound maker")
            samples = _cached_patch(path)
            hz = None if drum else 440.0 * 2.0 ** ((key - 69) / 12.0)
            sample = samples[0] if drum else _pick_sample(samples, hz)
            seg = _play(sample, hz, bend[start:], note.end - note.start, release, sample_rate, drum)
            m = min(len(seg), n_samples - start)
            out[start:start + m] += loud * seg[:m]
    return out.astype(np.float32)
