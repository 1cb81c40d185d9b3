"""Finding the sources of one video.

Motion models group the moving pixels by the rhythm of their motion (:mod:`avsplit.inference.rhythm`);
appearance models standardise the frame net's per-pixel features over the frame and cluster the
pixels that stand out (objects rather than background) on their features and position. k is
chosen automatically unless given, by checking that the groups are distinct sources (see
:mod:`avsplit.inference.counting`); each group is a source, whose mask in every window comes from
its pooled features (max over the group's pixels, exactly as in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avsplit.console import warn_line
from avsplit.inference.counting import choose_regions
from avsplit.inference.engine import Heard, Seen, SeparationEngine, motion_energy
from avsplit.inference.regions import Region
from avsplit.inference.windows import WindowStream


#: Windows sampled from a video to find its sources.
DISCOVERY_WINDOWS = 6


def discovery_picks(count: int) -> np.ndarray:
    """Indices of the windows (of ``count``) that :func:`discovery_windows` reads: up to
    :data:`DISCOVERY_WINDOWS`, spread evenly (all of them for a short video)."""
    return np.unique(np.linspace(0, count - 1, min(DISCOVERY_WINDOWS, count)).round().astype(int))


def discovery_windows(stream: WindowStream) -> tuple[np.ndarray, np.ndarray]:
    """Audio ``(M, S)`` and frames ``(M, F, H, W, 3)`` of up to :data:`DISCOVERY_WINDOWS` windows spread
    over the video (read by seeking), from which its sources are found."""
    windows = stream.windows
    picks = discovery_picks(len(windows))
    if len(picks) == len(windows):  # a short video: all of it, decoded once in order (cheaper than seeking)
        _, audio, frames = zip(*stream.iterate())
        return np.stack(audio), np.stack(frames)
    chosen = [windows[i] for i in picks]
    audio = np.stack([stream.audio(w) for w in chosen])
    frames = np.stack([stream.frames_at(stream.frame_times(w)) for w in chosen])
    return audio, frames


def saliency(raw: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Where the frame net sees objects: ``(h, w)`` saliency and ``(h, w, K)`` standardised features.

    ``raw``: per-pixel features ``(M, K, h, w)`` of a few windows (averaged). Each channel is
    standardised over the frame's pixels (median and standard deviation); a pixel's saliency is
    the norm of its positive deviations. Background texture stays near zero, objects stand out.
    """
    raw = raw.float()
    if raw.ndim == 5:  # motion models: (M, steps, K, h, w)
        raw = raw.mean(1)
    feats = raw.mean(0)  # (K, h, w)
    flat = feats.flatten(1)
    z = (feats - flat.median(dim=1).values[:, None, None]) / (flat.std(dim=1)[:, None, None] + 1e-6)
    sal = z.clamp(min=0).pow(2).sum(0).sqrt()
    return sal.cpu().numpy(), z.permute(1, 2, 0).cpu().numpy()


@dataclass
class Discovery:
    """What the model made of a few windows of a video (:func:`discover`), from which its sources are
    found (:func:`find_regions`, with any count) and which the separation of those windows reuses."""

    heard: Heard
    seen: Seen
    silent: bool
    """Whether the windows' sound is silent (then the video has one silent source)."""
    video_size: tuple[int, int]
    """``(width, height)`` of the video, for the regions' boxes."""
    path: Path | str = ""


def discover(engine: SeparationEngine, audio: np.ndarray, frames: np.ndarray, video_size: tuple[int, int],
             path: Path | str = "") -> Discovery:
    """The model pass over ``M`` windows (audio ``(M, S)``, frames ``(M, F, H, W, 3)``) of a video."""
    return Discovery(engine.hear(audio), engine.see(frames), float(np.abs(audio).max()) < 1e-4, video_size, path)


def candidates(seen: Seen) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pixels' ``(h, w)`` saliency and ``(h, w, K)`` standardised features: for motion
    models, sources are what moves (the players), described by what they look like; otherwise
    what the frame net sees standing out (:func:`saliency`)."""
    if seen.raw.ndim == 5:
        _, z = saliency(seen.appearance)
        return motion_energy(seen.flow, seen.raw.shape[-2:]), z
    return saliency(seen.raw)


def find_regions(engine: SeparationEngine, found: Discovery, num_sources: int | None) -> list[Region]:
    """Group the salient pixels of a video's discovery windows into sources (see the module doc).

    Salient pixels (:func:`candidates`) are clustered on their standardised features and position
    (:func:`avsplit.inference.counting.choose_regions`); each cluster's pooled features give a mask.
    Without ``num_sources``, the largest k (up to :data:`MAX_SOURCES`) whose groups are distinct
    sources is kept. A silent video, or one where nothing moves or stands out, is one source.
    """
    sal, z = candidates(found.seen)
    h, w = sal.shape
    whole = [0.0, 0.0, float(found.video_size[0]), float(found.video_size[1])]
    if found.silent:
        warn_line(f"{found.path}: the audio is silent; writing one silent source")
        return [Region(np.ones((h, w), bool), whole, 0.0, "silent")]
    sal = np.nan_to_num(sal, nan=0.0, posinf=0.0, neginf=0.0)  # a 1-pixel grid has no spread
    if not float(sal.max()) > 1e-6:
        # nothing moves or stands out (a still picture with sound, a tiny video): one source, the whole picture
        if num_sources and num_sources > 1:
            warn_line(f"{found.path}: nothing in the picture moves or stands out, so its sources cannot be told "
                      f"apart; writing one source instead of {num_sources}")
        return [Region(np.ones((h, w), bool), whole, 1.0, "whole picture")]
    return choose_regions(engine, found.seen, found.heard, sal, z, found.video_size, num_sources)


def discover_regions(engine: SeparationEngine, stream: WindowStream, num_sources: int | None) -> list[Region]:
    """Find the sounding regions of a video by clustering pixel features (see module doc)."""
    audio, frames = discovery_windows(stream)
    return find_regions(engine, discover(engine, audio, frames, (stream.info.width, stream.info.height), stream.path),
                        num_sources)
