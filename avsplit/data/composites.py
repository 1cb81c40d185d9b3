"""Composite training pictures: two sources shown in one picture, each source's vector pooled over
the pixels that show it, as ``separate`` pools each region of a duet.

- :func:`side_by_side`: two half-width clips next to each other (players of one size, apart);
- :func:`picture_in_picture`: one clip scaled down and inset over the other's picture, where the
  other moves least (players of different sizes, one in front of the other).
"""

from __future__ import annotations

import numpy as np

from avsplit.data.motion import choose_crop, resize_clip

#: Side of an inset clip, as a share of the picture's side (uniform in this range).
INSET_SCALE = (0.35, 0.65)
#: Places drawn for an inset; with flow, the one that hides the least of the other clip's motion is kept.
INSET_PLACES = 4


def side_by_side(frames: list[np.ndarray], flows: list, rng: np.random.Generator):
    """Two sources' half-width clips, uint8 ``(F, H, W / 2, 3)`` each (and their flow ``(steps, h, w / 2,
    2)``, or ``None``s), put side by side in a random order: one picture ``(2, F, H, W, 3)`` shown for both
    sources, its flow ``(2, steps, h, w, 2)`` (or ``None``) and the sources' halves, bool ``(2, H, W)``."""
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    canvas = np.concatenate([frames[i] for i in order], axis=2)
    flow = None if flows[0] is None else np.concatenate([flows[i] for i in order], axis=2)
    half = frames[0].shape[2]
    regions = np.zeros((2, canvas.shape[1], canvas.shape[2]), bool)
    for slot, i in enumerate(order):
        regions[i, :, slot * half : (slot + 1) * half] = True
    return _shown_to_both(canvas, flow, regions)


def picture_in_picture(frames: list[np.ndarray], flows: list, rng: np.random.Generator, scale: int = 1):
    """Two sources' square clips, uint8 ``(F, S, S, 3)`` each (and their flow ``(steps, S / scale,
    S / scale, 2)``, or ``None``s): a random one of them scaled to a side of :data:`INSET_SCALE` of ``S``
    (a multiple of ``2 * scale``) and pasted over the other at a place that is a multiple of ``scale``
    (with flow, the one of :data:`INSET_PLACES` that hides the least of the other's motion).

    Returns one picture ``(2, F, S, S, 3)`` shown for both sources, its flow ``(2, steps, S / scale,
    S / scale, 2)`` (or ``None``) and each source's visible pixels, bool ``(2, S, S)``: the inset's
    square, and the rest for the other.
    """
    inset = int(rng.integers(0, 2))
    base = 1 - inset
    _, size, _, _ = frames[base].shape
    side = max(2 * scale, int(round(size * rng.uniform(*INSET_SCALE) / (2 * scale))) * 2 * scale)
    y, x = choose_crop(size, size, side, scale, INSET_PLACES, rng, flows[base], least=True)
    small, small_flow = resize_clip(frames[inset], flows[inset], (side, side), scale)
    canvas = frames[base].copy()
    canvas[:, y : y + side, x : x + side] = small
    flow = None
    if flows[base] is not None:
        flow = np.array(flows[base], copy=True)
        flow[:, y // scale : (y + side) // scale, x // scale : (x + side) // scale] = small_flow
    regions = np.zeros((2, size, size), bool)
    regions[inset, y : y + side, x : x + side] = True
    regions[base] = ~regions[inset]
    return _shown_to_both(canvas, flow, regions)


def _shown_to_both(canvas: np.ndarray, flow: np.ndarray | None, regions: np.ndarray):
    """One composite picture ``(F, H, W, 3)`` and its flow (or ``None``) stacked for both sources."""
    return np.stack([canvas, canvas]), None if flow is None else np.stack([flow, flow]), regions
