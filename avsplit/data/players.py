"""Where a cached solo's player is, from the truth ``avsplit synth`` wrote beside its video, and the
*silent regions* of ``train --silent-regions``: the part of a solo's picture outside its player.

The automatic count (:mod:`avsplit.inference.counting`) keeps a group of pixels as a source only if
the group's own mask claims a share of the sound; a group on a distractor or on the background
must claim none. A silent region trains exactly that: an example's source is replaced by the
picture of another of its sources with its vector pooled outside that source's player (a dilated
box), and its sound is left out, so its ideal mask is empty; the sounding source's vector is pooled
over its player's box.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avsplit.data.entry import CachedVideo
from avsplit.scan import truth_path

#: Each player box is grown on every side by this share of the frame's short side (a player's motion
#: and the feature grid's coarse cells reach past the box the truth gives).
BOX_MARGIN = 0.08
#: A silent region must cover at least this share of the crop (else the example keeps its sources).
MIN_SILENT_SHARE = 0.2


def player_boxes(video: CachedVideo) -> np.ndarray | None:
    """The box of a solo's player in each cached frame, float ``(frames, 4)`` as ``(x0, y0, x1, y1)``
    in cached-frame pixels; ``None`` when beside the video there is no readable truth of exactly one
    source with one box per video frame (videos not made by ``avsplit synth``, duets)."""
    try:
        truth = json.loads(Path(truth_path(video.source)).read_text())
        sources = truth["sources"]
        if len(sources) != 1:
            return None
        boxes = np.asarray(sources[0]["boxes"], dtype=np.float64)
        width, height, fps = float(truth["width"]), float(truth["height"]), float(truth["fps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0 or min(width, height, fps) <= 0:
        return None
    index = np.clip(np.round(np.asarray(video.frame_times) * fps).astype(int), 0, len(boxes) - 1)
    h, w = video.frames.shape[1:3]
    return boxes[index] * np.array([w / width, h / height, w / width, h / height])


def player_mask(boxes: np.ndarray, frame_shape: tuple[int, int], margin: float = BOX_MARGIN) -> np.ndarray:
    """The pixels any of ``boxes`` ``(n, 4)`` covers, each box grown by ``margin`` times the frame's short
    side: bool ``(H, W)`` for a frame of ``frame_shape`` ``(H, W)``."""
    h, w = frame_shape
    grow = margin * min(h, w)
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        top, bottom = int(np.floor(max(0.0, y0 - grow))), int(np.ceil(min(h, y1 + grow)))
        left, right = int(np.floor(max(0.0, x0 - grow))), int(np.ceil(min(w, x1 + grow)))
        mask[top:bottom, left:right] = True
    return mask


def choose_silent_region(masks: list[np.ndarray | None], rng: np.random.Generator) -> tuple[int, int] | None:
    """For an example whose sources' player masks (bool ``(H, W)`` each, after cropping; ``None`` where
    unknown) are ``masks``: ``(shown, replaced)``, the source whose picture outside its player becomes
    the silent region and the source it replaces, or ``None`` when no source's picture has at least
    :data:`MIN_SILENT_SHARE` of its pixels outside its player."""
    usable = [i for i, m in enumerate(masks) if m is not None and m.any() and 1.0 - m.mean() >= MIN_SILENT_SHARE]
    if not usable or len(masks) < 2:
        return None
    shown = usable[int(rng.integers(len(usable)))]
    others = [i for i in range(len(masks)) if i != shown]
    return shown, others[int(rng.integers(len(others)))]
