"""Finding the sources of one video.

The appearance net's per-pixel features are standardised over the frame; pixels that stand out
(objects rather than background) are clustered on their features and position into groups (k
chosen automatically unless given, by checking that the groups' masks differ, see
:mod:`avsplit.inference.counting`); each group is a source, whose mask in every window comes from
its pooled features (max over the group's pixels, exactly as in training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avsplit.console import warn_line
from avsplit.inference.counting import choose_regions
from avsplit.inference.engine import SeparationEngine
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


@torch.no_grad()
def find_regions(
    engine: SeparationEngine, audio: np.ndarray, frames: np.ndarray, video_size: tuple[int, int],
    num_sources: int | None, path: Path | str = "", features: dict | None = None,
) -> list[Region]:
    """Group the salient pixels of a few windows into sources (see the module doc).

    Salient pixels (:func:`saliency` at least :data:`SALIENT_FRACTION` of its maximum) are
    clustered on their standardised features and position; each cluster's pooled features give a
    mask. Without ``num_sources``, the largest k (up to :data:`MAX_SOURCES`) whose masks are
    distinct (cosine similarity of masked spectrograms below :data:`SAME_SOURCE_SIMILARITY`, also
    against the sum of the other groups: a group that sounds like the others together is a mix of
    them) and each carry at least :data:`MIN_SOURCE_SHARE` of the separated energy is kept.
    ``features``, when given, receives what was computed for the windows, for reuse: raw visual
    features (``raw``), mixture STFT (``spec``), its warped magnitude (``warped``) and audio features
    (``audio``).
    """
    spec, warped, feats = engine.analyse(audio)
    raw, flow, appearance = engine.visual_flow_appearance(frames)  # (M, K, h, w); motion models: (M, steps, K, h, w)
    if features is not None:
        features.update(raw=raw, spec=spec, warped=warped, audio=feats)
    if raw.ndim == 5:
        # motion models: sources are what moves (the players), described by what they look like
        _, z = saliency(appearance)
        sal = engine.motion_energy(None, raw.shape[-2:], flow)
    else:
        sal, z = saliency(raw)
    h, w = sal.shape
    whole = [0.0, 0.0, float(video_size[0]), float(video_size[1])]
    if float(np.abs(audio).max()) < 1e-4:
        warn_line(f"{path}: the audio is silent; writing one silent source")
        return [Region(np.ones((h, w), bool), whole, 0.0, "silent")]
    sal = np.nan_to_num(sal, nan=0.0, posinf=0.0, neginf=0.0)  # a 1-pixel grid has no spread
    if not float(sal.max()) > 1e-6:
        # nothing moves or stands out (a still picture with sound, a tiny video): one source, the whole picture
        if num_sources and num_sources > 1:
            warn_line(f"{path}: nothing in the picture moves or stands out, so its sources cannot be told apart; "
                      f"writing one source instead of {num_sources}")
        return [Region(np.ones((h, w), bool), whole, 1.0, "whole picture")]
    if features is not None:
        features.update(saliency=sal, standardised=z, flow=flow)
    return choose_regions(engine, raw, sal, z, warped, feats, video_size, num_sources, flow)


def discover_regions(engine: SeparationEngine, stream: WindowStream, num_sources: int | None) -> list[Region]:
    """Find the sounding regions of a video by clustering pixel features (see module doc)."""
    audio, frames = discovery_windows(stream)
    return find_regions(engine, audio, frames, (stream.info.width, stream.info.height), num_sources, stream.path)
