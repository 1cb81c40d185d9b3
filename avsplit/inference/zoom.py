"""Looking closer at a source (``--zoom``): its frames cut to a square around its box and scaled up to
the model's frame size before the frame network sees them.

A player drawn small in a wide frame covers a few cells of the frame network's grid, among
background and other objects; seen whole, its pooled vector hardly depends on what it is. Cut
around the player (its box filling :data:`ZOOM_SHARE` of the square's side) and scaled up, it is
seen as the training pictures show players. Mix SDR of ``small-motion-synth-v5`` on foreign
mixtures of two solos (64 pairs): whole pictures 4.41 dB; each solo zoomed onto where its motion
follows its sound (:func:`avsplit.localize.sounding.sounding_box`) 5.62 dB; onto its truth box
6.27 dB. Zooming helps as much as the box is tight: onto the looser boxes of regions found by
clustering it gains nothing (``weights/README.md``, session 13).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Share of the square's side that the source's box fills (its larger side).
ZOOM_SHARE = 0.7


def zoom_square(box: Sequence[float], frame_size: tuple[int, int], video_size: tuple[int, int],
                share: float = ZOOM_SHARE) -> tuple[int, int, int]:
    """The square ``(x0, y0, side)`` in frame pixels around ``box`` ``[x0, y0, x1, y1]`` (video pixels),
    for frames of ``frame_size`` ``(W, H)`` scaled from a video of ``video_size``: centred on the box,
    its larger side ``share`` of the square's, at least 8 pixels and at most the frame's long side,
    moved inside the frame where it fits."""
    w, h = frame_size
    sx, sy = w / video_size[0], h / video_size[1]
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max((x1 - x0) * sx, (y1 - y0) * sy) / share
    side = int(round(min(max(side, 8.0), max(w, h))))
    cx, cy = (x0 + x1) / 2 * sx, (y0 + y1) / 2 * sy

    def place(centre: float, extent: int) -> int:
        start = int(round(centre - side / 2))
        if side <= extent:
            return min(max(start, 0), extent - side)
        return (extent - side) // 2  # wider than the frame: centred, the rest padded

    return place(cx, w), place(cy, h), side


def zoom_frames(frames: np.ndarray, box: Sequence[float], video_size: tuple[int, int],
                share: float = ZOOM_SHARE) -> np.ndarray:
    """uint8 frames ``(..., H, W, 3)`` -> the square around ``box`` (:func:`zoom_square`) scaled to the
    frames' short side: ``(..., S, S, 3)``, ``S = min(H, W)``; what lies outside the frame repeats its edge."""
    import cv2

    h, w = frames.shape[-3:-1]
    x0, y0, side = zoom_square(box, (w, h), video_size, share)
    pad = ((max(0, -y0), max(0, y0 + side - h)), (max(0, -x0), max(0, x0 + side - w)))
    flat = frames.reshape(-1, h, w, 3)
    if any(p for pair in pad for p in pair):
        flat = np.pad(flat, ((0, 0), *pad, (0, 0)), mode="edge")
        x0, y0 = x0 + pad[1][0], y0 + pad[0][0]
    out_side = min(h, w)
    cut = flat[:, y0 : y0 + side, x0 : x0 + side]
    scaled = np.stack([cv2.resize(np.ascontiguousarray(f), (out_side, out_side), interpolation=cv2.INTER_LINEAR)
                       for f in cut])
    return scaled.reshape(*frames.shape[:-3], out_side, out_side, 3)
