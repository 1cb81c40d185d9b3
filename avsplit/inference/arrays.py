"""Separation in memory: a video given as arrays (or any :class:`~avsplit.inference.windows.WindowStream`)
to its stems as arrays, with the regions of its sources.

The layers, as in music separators: :func:`separate_arrays` takes sound and pictures as arrays and
wraps them in an :class:`ArrayVideo`; :func:`separate_stream` separates any decoded video (an
:class:`ArrayVideo`, or a file's :class:`WindowStream`) through the same jobs as ``separate`` on
files (:mod:`avsplit.inference.jobs`), with the tracks collected in memory instead of written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit import io as media
from avsplit.dsp.chunking import Window
from avsplit.dsp.resample import resample
from avsplit.errors import ConfigError
from avsplit.inference.discovery import Discovery
from avsplit.inference.engine import SeparationEngine
from avsplit.inference.jobs import Output, RegionSpec, VideoJob, start_job, run_jobs
from avsplit.inference.loader import VideoStart, video_messages
from avsplit.inference.regions import Region
from avsplit.inference.stems import ArrayWriter, StemJoiner
from avsplit.inference.windows import WindowStream
from avsplit.models import AVSeparator, ModelConfig


class ArrayVideo(WindowStream):
    """A video given as arrays, read window by window as :class:`WindowStream` reads a file.

    ``audio``: float ``(channels, samples)`` (or ``(samples,)``) at ``sample_rate``; ``frames``: uint8
    RGB ``(T, H, W, 3)``, frame ``k`` shown from ``k / fps`` s on. The model hears the sound mixed
    down to one channel (the channels' mean) and resampled to its rate by FFmpeg's resampler, and
    sees the frame on screen at each of its frame times, resized by FFmpeg's scaler. (A file's
    sound and pictures are mixed down, resampled and resized while they are decoded, so the same
    video as a file and as arrays can differ slightly when the arrays are not already at the
    model's rate and frame size.) The stems are made at ``out_rate`` (default: ``sample_rate``).
    """

    def __init__(self, audio: np.ndarray, sample_rate: int, frames: np.ndarray, fps: float,
                 model: AVSeparator | ModelConfig, overlap: float = 0.25, out_rate: int | None = None,
                 mono: bool = False, name: str = "<arrays>"):
        audio = np.asarray(audio, np.float32)
        audio = audio[None] if audio.ndim == 1 else audio
        frames = np.asarray(frames)
        if audio.ndim != 2 or not audio.shape[1] or not sample_rate > 0:
            raise ConfigError(f"audio must be (channels, samples) with samples at a positive rate, got {audio.shape}")
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames) or not fps > 0:
            raise ConfigError(f"frames must be uint8 (T, H, W, 3) at a positive fps, got {frames.dtype} {frames.shape}")
        self.sound, self.sound_rate, self.pictures, self.picture_rate = audio, int(sample_rate), frames, float(fps)
        height, width = frames.shape[1:3]
        info = media.MediaInfo(Path(name), max(audio.shape[1] / sample_rate, len(frames) / fps), True, True, width,
                               height, float(fps), num_frames=len(frames), audio_rate=int(sample_rate),
                               audio_channels=audio.shape[0])
        super().__init__(Path(name), model, overlap, info=info, out_rate=out_rate, mono=mono)
        self.model_sound = resample(audio.mean(0), self.sound_rate, self.cfg.audio.sample_rate)
        """The sound as the model hears it: mono at its rate ``(samples,)``."""

    def audio(self, win: Window) -> np.ndarray:
        return _window_slice(self.model_sound[None], win.start, self.cfg.audio.clip_samples)[0]

    def audio_in_order(self, windows: Sequence[Window]):
        return (self.audio(w) for w in windows)

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """The frames on screen at ``times`` (the last one shown at or before each; the first before it),
        at the model's frame size: ``(n, H, W, 3)``."""
        shown = np.arange(len(self.pictures)) / self.picture_rate
        index = np.clip(np.searchsorted(shown, np.asarray(times) + 1e-6, side="right") - 1, 0, len(shown) - 1)
        return media.resize_frames(self.pictures[index], self.frame_size)

    def frames_for(self, times: Sequence[np.ndarray]):
        return (self.frames_at(t) for t in times)

    def original_in_order(self):
        target = self.output.target
        sound = self.sound.mean(0, keepdims=True) if self.mono else self.sound
        if target.sample_rate != self.sound_rate:
            sound = np.stack([resample(channel, self.sound_rate, target.sample_rate) for channel in sound])
        return (_window_slice(sound, w.start, target.clip_samples) for w in self.output.windows)


def _window_slice(sound: np.ndarray, start: int, size: int) -> np.ndarray:
    """``size`` samples of ``sound`` ``(channels, n)`` from ``start``, zero-padded past the end: float32."""
    out = np.zeros((sound.shape[0], size), np.float32)
    part = sound[:, start : start + size]
    out[:, : part.shape[1]] = part
    return out


@dataclass
class Separated:
    """A video's separation in memory."""

    sources: np.ndarray
    """float32 ``(N, channels, samples)``: one track per source, ordered left to right."""
    residual: np.ndarray
    """float32 ``(channels, samples)``: the original minus the sum of the sources."""
    sample_rate: int
    regions: list[Region]
    """Each source's region (box in the video's pixels, confidence)."""
    discovery: Discovery | None = None
    """What the model made of the windows its sources were found on (None when the regions were
    given): :func:`avsplit.inference.discovery.find_regions` finds them again with another count."""


def separate_stream(engine: SeparationEngine, stream: WindowStream, regions: RegionSpec = RegionSpec(),
                    more: Sequence[WindowStream] = ()) -> list[Separated]:
    """Separate one decoded video (``stream``) as ``separate`` does, into arrays: ``[Separated]`` for
    ``stream``'s output, then one for each of ``more`` (streams of the same video with other output
    rates or channels, their stems made from the same masks, the model run once)."""
    def start(msg: VideoStart) -> VideoJob:
        job = start_job(engine, msg, regions, stream.path)
        job.outputs = [Output(plan.target, StemJoiner(plan.total, plan.target.clip_samples, plan.windows,
                                                      [ArrayWriter() for _ in job.regions], residual=ArrayWriter()))
                       for plan in msg.outputs]
        return job

    def finish(_: int, job: VideoJob) -> list[Separated]:
        done = []
        for out in job.outputs:
            out.stems.close()
            sources = np.stack([w.array() for w in out.stems.writers])
            done.append(Separated(sources, out.stems.residual.array(), out.target.sample_rate, job.regions, job.discovery))
        return done

    messages = video_messages(0, stream, regions.method == "cluster", more)
    [(_, result, error)] = run_jobs(engine, messages, start, finish)  # one video: its result or its error
    if error is not None:
        raise error
    return result


def separate_arrays(engine: SeparationEngine, audio: np.ndarray, sample_rate: int, frames: np.ndarray, fps: float, *,
                    regions: RegionSpec = RegionSpec(), overlap: float = 0.25, out_rate: int | None = None,
                    mono: bool = False) -> Separated:
    """Separate a video given as arrays (see :class:`ArrayVideo`): sound ``(channels, samples)`` at
    ``sample_rate`` and uint8 frames ``(T, H, W, 3)`` at ``fps`` -> the sources at ``out_rate``
    (default: ``sample_rate``) with the sound's channels (one when ``mono``), and their regions."""
    video = ArrayVideo(audio, sample_rate, frames, fps, engine.model, overlap, out_rate=out_rate, mono=mono)
    return separate_stream(engine, video, regions)[0]
