"""Streaming sample-rate conversion by FFmpeg's resampler (through PyAV)."""

from __future__ import annotations

import av
import numpy as np


class StreamResampler:
    """Convert mono float audio from ``in_rate`` to ``out_rate`` chunk by chunk.

    ``push(chunk)`` returns what is ready; ``flush()`` returns the rest. The concatenated output
    is the whole signal resampled (about ``len * out_rate / in_rate`` samples).
    """

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.out_rate)
        self._pts = 0

    def _collect(self, frames) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
        if samples.shape[1] == 0:
            return np.zeros(0, np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        return self._collect(self._resampler.resample(None))


def resample(audio: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono signal ``(samples,)``."""
    if in_rate == out_rate:
        return np.asarray(audio, dtype=np.float32)
    r = StreamResampler(in_rate, out_rate)
    return np.concatenate([r.push(audio), r.flush()])
