"""Long inputs in overlapping windows joined by cross-fading, model-agnostic and streaming.

A long signal is cut into windows of a fixed length with a given overlap; a function (a model)
maps each window to an output of the same length (any number of leading channels); outputs are
blended with linear cross-fades in the overlaps and normalised by the sum of the fade weights, so
a function that returns its input reconstructs the input exactly. Finished samples are handed
out as soon as no later window can touch them, so memory is bounded by the window, not by the
length of the signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    index: int
    start: int
    """First sample of the window in the signal."""
    length: int
    """Samples of real signal inside the window (the rest, up to the window size, is padding)."""


def plan_windows(total: int, window: int, overlap: float = 0.25) -> list[Window]:
    """Window positions covering ``total`` samples.

    Consecutive windows start ``window * (1 - overlap)`` apart; the last one is shifted back so it
    ends at the signal's end (when the signal is at least one window long). A signal shorter than
    one window gives a single window, padded by the caller.
    """
    if window <= 0:
        raise ValueError("window must be positive")
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    if total <= window:
        return [Window(0, 0, max(total, 0))]
    hop = max(1, int(round(window * (1.0 - overlap))))
    starts = list(range(0, total - window, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    return [Window(i, s, window) for i, s in enumerate(starts)]


def centred_times(start: float, span: float, n: int) -> np.ndarray:
    """Float64 ``(n,)`` times of ``n`` frames spread over ``[start, start + span)``: the centres of its
    ``n`` equal parts, so every frame lies inside the window and none at its edges."""
    return start + (np.arange(n) + 0.5) * span / n


def rescale_windows(windows: list[Window], rate_from: int, rate_to: int) -> list[Window]:
    """The same windows at another sample rate: each window's first and last-plus-one samples are
    mapped by time and rounded, so windows planned for ``total`` samples at ``rate_from`` cover
    exactly ``round(total * rate_to / rate_from)`` samples at ``rate_to`` (overlaps map to
    overlaps of the same duration, to a sample)."""

    def at(sample: int) -> int:
        return int(round(sample * rate_to / rate_from))

    return [Window(w.index, at(w.start), at(w.start + w.length) - at(w.start)) for w in windows]


def fade_weights(window: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Positive weights ``(window,)``: linear ramps over ``fade_in`` / ``fade_out`` samples, 1 between."""
    w = np.ones(window, dtype=np.float64)
    if fade_in > 0:
        w[:fade_in] = np.arange(1, fade_in + 1) / (fade_in + 1)
    if fade_out > 0:
        w[window - fade_out :] = np.minimum(w[window - fade_out :], np.arange(fade_out, 0, -1) / (fade_out + 1))
    return w


class OverlapAdd:
    """Accumulates window outputs and releases finished samples in order.

    ``add(window, output)`` takes the output ``(channels, window_size)`` of one window (windows in
    order) and returns the samples that are now final, ``(channels, n)``; ``finish()`` returns
    the rest. Concatenated, the returned pieces are exactly ``total`` samples long.
    """

    def __init__(self, total: int, window_size: int, windows: list[Window]):
        self.total = total
        self.size = window_size
        self.windows = windows
        self._acc: np.ndarray | None = None  # (channels, span) weighted sum from self._offset
        self._wsum: np.ndarray | None = None
        self._offset = 0  # first sample not yet released
        self._next = 0

    def add(self, window: Window, output: np.ndarray) -> np.ndarray:
        if window.index != self._next:
            raise ValueError("windows must be added in order")
        self._next += 1
        output = np.asarray(output, dtype=np.float64)
        if output.ndim == 1:
            output = output[None]
        if output.shape[-1] < window.length:
            raise ValueError(f"window output has {output.shape[-1]} samples, expected {window.length}")
        prev_end = self.windows[window.index - 1].start + self.windows[window.index - 1].length if window.index else 0
        nxt = self.windows[window.index + 1].start if window.index + 1 < len(self.windows) else None
        fade_in = max(0, prev_end - window.start) if window.index else 0
        fade_out = max(0, window.start + window.length - nxt) if nxt is not None else 0
        w = fade_weights(window.length, fade_in, fade_out)
        end = window.start + window.length
        if self._acc is None:
            self._acc = np.zeros((output.shape[0], 0))
            self._wsum = np.zeros(0)
        need = end - self._offset
        if self._acc.shape[1] < need:
            grow = need - self._acc.shape[1]
            self._acc = np.concatenate([self._acc, np.zeros((self._acc.shape[0], grow))], axis=1)
            self._wsum = np.concatenate([self._wsum, np.zeros(grow)])
        a, b = window.start - self._offset, end - self._offset
        self._acc[:, a:b] += output[:, : window.length] * w
        self._wsum[a:b] += w
        ready_until = nxt if nxt is not None else end
        return self._release(ready_until)

    def _release(self, until: int) -> np.ndarray:
        n = max(0, until - self._offset)
        piece = self._acc[:, :n] / self._wsum[:n]
        self._acc = self._acc[:, n:]
        self._wsum = self._wsum[n:]
        self._offset += n
        return piece.astype(np.float32)

    def finish(self) -> np.ndarray:
        if self._next != len(self.windows):
            raise ValueError(f"{len(self.windows) - self._next} windows were never added")
        return self._release(self.total)
