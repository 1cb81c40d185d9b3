"""``localize --method onsets``: what moves in time with the sound, without any trained weights.

Per time step (the analysis frame rate):

- **audio onsets**: spectral flux of the sound track (the summed increase of log magnitude from
  one short-time spectrum to the next), picked as local peaks that stand out from their
  surroundings (median plus a multiple of the median absolute deviation within a few seconds);
- **visual onsets** per region (a grid of cells): the increase of motion energy (mean speed of
  the dense optical flow, :mod:`avsplit.dsp.flow`, camera motion removed), picked the same way.

Both are binary events. A region's score over a window of a few seconds is the log-likelihood of
the two event series under the model "this region moves when the sound starts": every step
where they agree (both an event, within a tolerance of one step, or both quiet) counts log p,
every mismatch (a sound onset the region missed, or a motion onset with no sound) log(1 - p).
The map shows that log-likelihood above the one of a region that never moves, divided by the
most it can gain (every sound onset matched), which is ``(hits - false alarms) / sound onsets``
clipped to [0, 1]: a region that jolts at every note and at nothing else scores 1, a still
background and an object that moves to its own rhythm score 0.

Everything streams: frames, flow and audio are read in order and only a few seconds of
per-step values are held, so memory does not grow with the video's length.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np

from avsplit import io as media
from avsplit.dsp.flow import iter_flow
from avsplit.dsp.motion import Grid, flow_magnitude, region_motion
from avsplit.dsp.maps import sparsify
from avsplit.dsp.onsets import dilate, pick_events


T = TypeVar("T")


@dataclass(frozen=True)
class OnsetSettings:
    fps: float = 12.0
    """Analysis rate (steps per second); capped at the video's own frame rate."""
    short_side: int = 128
    """Frames are scaled to this short side for the optical flow."""
    cell: int = 8
    """Region size in pixels of the scaled frames."""
    audio_rate: int = 16000
    n_fft: int = 1024
    audio_hop: int = 256
    window: float = 4.0
    """Seconds of events scored for each map."""
    map_rate: float = 4.0
    """Maps per second (at most the analysis rate)."""
    p: float = 0.8
    """Probability that a region moving with the sound agrees with it in a step."""
    tolerance: int = 2
    """Steps by which a motion onset may lead or lag the sound onset and still match (2 steps at
    12 fps: a sprite's kick builds over a frame or two, and the flow of a turn or a swing peaks late)."""
    context: float = 2.0
    """Seconds on each side used to decide what stands out (adaptive thresholds)."""
    audio_k: float = 1.0
    visual_k: float = 3.0
    """Events must exceed the local median by this many median absolute deviations..."""
    audio_rel: float = 0.1
    visual_rel: float = 0.1
    """... and this share of the local maximum."""
    min_speed: float = 0.25
    """Motion increases below this (pixels per step at the analysis size) are never events."""
    blur: float = 1.0
    """Spatial smoothing of the map, in cells (Gaussian sigma; 0 for none)."""
    activity: float = 0.1
    """Seconds on each side over which the current motion energy is averaged; the map is scaled
    by it, so an object that moved with the sound lights up only while it moves (0: off)."""
    floor: float = 0.2
    """Values below this share of the map's peak are set to 0 (the rest rescaled so the peak keeps
    its value): weak, scattered agreement is noise, and a sparse map shows the objects' extent. Not
    higher: the second of two players, or the edge of a turning one, often agrees less than the
    strongest cell."""


# ------------------------------------------------------------------------------ pure functions




def coincidences(audio: np.ndarray, visual: np.ndarray, tolerance: int = 1) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts per region of ``visual`` ``(T, ...)`` against ``audio`` ``(T,)`` (bool events).

    Returns ``(hits, false_alarms, audio_onsets, steps)``: hits are sound onsets with a motion
    onset within ``tolerance`` steps; false alarms are motion onsets with no sound onset within
    ``tolerance``.
    """
    a = np.asarray(audio, dtype=bool).reshape(-1)
    v = np.asarray(visual, dtype=bool)
    shape = (len(a),) + (1,) * (v.ndim - 1)
    hits = (a.reshape(shape) & dilate(v, tolerance)).sum(axis=0)
    false_alarms = (v & ~dilate(a, tolerance).reshape(shape)).sum(axis=0)
    return hits, false_alarms, int(a.sum()), len(a)


def coincidence_loglik(audio: np.ndarray, visual: np.ndarray, p: float = 0.8, tolerance: int = 1) -> np.ndarray:
    """Log-likelihood per region that its motion onsets coincide with the sound onsets.

    Each step scores ``log p`` when the two agree (a sound onset matched by a motion onset within
    ``tolerance`` steps, or neither happens) and ``log(1 - p)`` for each mismatch (a missed sound
    onset, a motion onset without sound).
    """
    if not 0.5 < p < 1:
        raise ValueError("p must be in (0.5, 1)")
    hits, fas, n_audio, steps = coincidences(audio, visual, tolerance)
    mismatches = (n_audio - hits) + fas
    return (steps - mismatches) * math.log(p) + mismatches * math.log(1 - p)


def coincidence_map(audio: np.ndarray, visual: np.ndarray, p: float = 0.8, tolerance: int = 1) -> np.ndarray:
    """The log-likelihood of :func:`coincidence_loglik` above that of a region that never moves,
    divided by the most it can be (all sound onsets matched, no false alarm): in [0, 1]."""
    a = np.asarray(audio, dtype=bool).reshape(-1)
    n_audio = int(a.sum())
    v = np.asarray(visual, dtype=bool)
    if n_audio == 0:
        return np.zeros(v.shape[1:], np.float32)
    still = np.zeros((len(a), 1), bool)
    gain = coincidence_loglik(a, v, p, tolerance) - coincidence_loglik(a, still, p, tolerance)[0]
    best = n_audio * (math.log(p) - math.log(1 - p))
    return np.clip(gain / best, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------ streaming helpers


def sliding(items: Iterable[T], before: int, after: int) -> Iterator[tuple[T, list[T], int]]:
    """For each item: ``(item, window, position)`` where ``window`` holds up to ``before`` items
    before it and ``after`` after it (fewer at the ends) and ``window[position] is item``.
    Holds at most ``before + after + 1`` items."""
    buf: deque = deque()
    first = 0  # index of buf[0] in the whole sequence
    centre = 0
    count = 0
    for item in items:
        buf.append(item)
        count += 1
        while centre + after < count:
            lo = max(first, centre - before)
            window = [buf[i - first] for i in range(lo, min(count, centre + after + 1))]
            yield buf[centre - first], window, centre - lo
            centre += 1
            while first < centre - before:
                buf.popleft()
                first += 1
    while centre < count:
        lo = max(first, centre - before)
        window = [buf[i - first] for i in range(lo, count)]
        yield buf[centre - first], window, centre - lo
        centre += 1


def _flux_per_step(path: Path, settings: OnsetSettings, step: float) -> Iterator[float]:
    """Spectral flux per analysis step k (the max over STFT frames centred in
    ``[(k - 1/2) step, (k + 1/2) step)``), streamed from the sound track; ends with the audio."""
    rate, n_fft, hop = settings.audio_rate, settings.n_fft, settings.audio_hop
    window = np.hanning(n_fft)
    buf = np.zeros(n_fft // 2, np.float64)  # zero padding before the first sample (centred frames)
    buf_start = -(n_fft // 2)  # sample index of buf[0]
    j = 0  # next STFT frame (centre j * hop)
    prev_mag = None
    k = 0
    current = 0.0

    def frames_ready(final: bool):
        nonlocal buf, buf_start, j, prev_mag
        end = buf_start + len(buf)
        while True:
            centre = j * hop
            lo = centre - n_fft // 2
            if lo + n_fft > end:
                if not final or centre >= end:
                    break
            seg = buf[lo - buf_start: lo - buf_start + n_fft]
            if len(seg) < n_fft:
                seg = np.pad(seg, (0, n_fft - len(seg)))
            mag = np.log1p(100.0 * np.abs(np.fft.rfft(seg * window)))
            flux = 0.0 if prev_mag is None else float(np.maximum(mag - prev_mag, 0.0).sum())
            prev_mag = mag
            yield centre / rate, flux
            j += 1
        keep = max(0, (j * hop - n_fft // 2) - buf_start)
        if keep:
            buf = buf[keep:]
            buf_start += keep

    def take(frames):
        nonlocal k, current
        for t, flux in frames:
            while t >= (k + 0.5) * step:
                yield current
                k += 1
                current = 0.0
            current = max(current, flux)

    for chunk in media.iter_audio(path, rate):
        buf = np.concatenate([buf, chunk[0].astype(np.float64)])
        yield from take(frames_ready(final=False))
    yield from take(frames_ready(final=True))
    yield current


@dataclass
class _Step:
    t: float
    flux: float
    motion: np.ndarray  # (rows, cols)
    rise: np.ndarray | None = None


def _steps(path: Path, settings: OnsetSettings, fps: float) -> Iterator[_Step]:
    grid = None
    flux_iter = _flux_per_step(path, settings, 1.0 / fps)
    prev_motion = None
    for t, flow in iter_flow(path, fps=fps, short_side=settings.short_side):
        if grid is None:
            grid = Grid.by_cell(flow.shape[0], flow.shape[1], settings.cell)
        motion = region_motion(flow_magnitude(flow), grid)
        rise = np.zeros_like(motion) if prev_motion is None else np.maximum(motion - prev_motion, 0.0)
        prev_motion = motion
        flux = next(flux_iter, 0.0)
        yield _Step(t, flux, motion, rise)


def grid_shape(path: str | Path, settings: OnsetSettings = OnsetSettings(), info: media.MediaInfo | None = None) -> tuple[int, int]:
    """``(rows, cols)`` of the onset maps of a video."""
    info = info or media.probe(path)
    w, h = media.scaled_size(info.width, info.height, settings.short_side)
    g = Grid.by_cell(h, w, settings.cell)
    return g.rows, g.cols


def analysis_fps(info: media.MediaInfo, settings: OnsetSettings) -> float:
    return float(min(settings.fps, info.fps or settings.fps))


def onset_maps(path: str | Path, settings: OnsetSettings = OnsetSettings(),
               info: media.MediaInfo | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(t, map)`` for a video: ``map`` float32 ``(rows, cols)`` in [0, 1] (see the module doc).

    Maps come every ``1 / map_rate`` seconds (rounded to whole analysis steps), each scoring the
    events within ``window / 2`` seconds of its time.
    """
    import cv2

    path = Path(path)
    info = info or media.probe(path)
    info.require_video().require_audio()
    fps = analysis_fps(info, settings)
    ctx = max(2, int(round(settings.context * fps)))
    half = max(1, int(round(settings.window * fps / 2)))
    stride = max(1, int(round(fps / min(settings.map_rate, fps))))

    def events() -> Iterator[tuple[float, bool, np.ndarray, np.ndarray]]:
        for step, window, pos in sliding(_steps(path, settings, fps), ctx, ctx):
            flux = np.array([s.flux for s in window])
            rises = np.stack([s.rise for s in window])
            a = bool(pick_events(flux, pos, settings.audio_k, settings.audio_rel, floor=1e-3))
            v = pick_events(rises, pos, settings.visual_k, settings.visual_rel, floor=settings.min_speed)
            yield step.t, a, v, step.motion

    act = max(0, int(round(settings.activity * fps)))
    index = 0
    for (t, _, _, _), window, pos in sliding(events(), half, half):
        if index % stride == 0:
            a = np.array([w[1] for w in window])
            v = np.stack([w[2] for w in window])
            m = coincidence_map(a, v, settings.p, settings.tolerance)
            if settings.activity > 0:
                # only what moves now: scale by the current motion energy (relative to the most
                # active region, never boosting motion below min_speed)
                now = np.stack([w[3] for w in window[max(0, pos - act): pos + act + 1]]).mean(axis=0)
                m = m * np.clip(now / max(float(now.max()), settings.min_speed), 0.0, 1.0)
            if settings.blur > 0 and m.any():
                peak = float(m.max())
                m = cv2.GaussianBlur(m, (0, 0), settings.blur, borderType=cv2.BORDER_REPLICATE)
                m = np.clip(m * (peak / max(float(m.max()), 1e-8)), 0.0, 1.0)
            m = sparsify(m, settings.floor)
            yield t, m.astype(np.float32)
        index += 1


__all__ = ["OnsetSettings", "analysis_fps", "coincidence_loglik", "coincidence_map", "coincidences", "grid_shape",
           "onset_maps", "sliding"]
