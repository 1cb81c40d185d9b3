"""Optical flow for the motion network, cached once per training video and cut into per-window,
per-crop pieces (the flow itself is computed by :mod:`avsplit.models.inputs`, as for separation).
It is stored as float16 ``(T - 1, H / s, W / s, 2)`` ``(dx, dy)`` arrays named ``flow`` in the cache
entry (:class:`FlowExtra`).
"""

from __future__ import annotations

import numpy as np

from avsplit.data.entry import CachedVideo, EntryWriter
from avsplit.models.config import ModelConfig, MotionConfig
from avsplit.models.inputs import compute_flow, flow_estimator


#: Frames processed per chunk when computing a long video's flow.
FLOW_CHUNK = 64




class FlowExtra:
    """Cache extra: the optical flow of a whole video, stored as ``flow`` (float16)."""

    version = "1"

    def __init__(self, motion: MotionConfig):
        self.motion = motion
        self.name = f"flow_{motion.flow_backend}_{motion.flow_preset}_s{motion.flow_scale}"

    def compute(self, video: CachedVideo, entry: EntryWriter) -> None:
        est = flow_estimator(self.motion)
        frames = video.frames
        total = frames.shape[0]
        with entry.stream_array("flow", np.float16) as out:
            for lo in range(0, max(total - 1, 0), FLOW_CHUNK):
                chunk = np.asarray(frames[lo : min(total, lo + FLOW_CHUNK + 1)])
                out.extend(compute_flow(chunk, self.motion, est).astype(np.float16))
            if total < 2:
                h, w = frames.shape[1] // self.motion.flow_scale, frames.shape[2] // self.motion.flow_scale
                out.extend(np.zeros((0, h, w, 2), np.float16))
        entry.meta.setdefault("extra", {})[self.name] = {"backend": self.motion.flow_backend,
                                                         "preset": self.motion.flow_preset, "scale": self.motion.flow_scale}


def cache_extras(config: ModelConfig) -> list:
    """The cache extras a model needs (flow for motion models)."""
    return [FlowExtra(config.motion)] if config.motion is not None else []


def window_flow(flow: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The flow between consecutive frames ``indices`` (``(F,)`` into a video's frames) from its
    cached flow ``(T - 1, h, w, 2)``: ``(F - 1, h, w, 2)`` float32. A repeated frame (a window past
    the end of the video) has zero flow."""
    idx = np.asarray(indices, np.int64)
    out = np.zeros((max(len(idx) - 1, 0), *flow.shape[1:]), np.float32)
    for i in range(len(idx) - 1):
        a, b = int(idx[i]), int(idx[i + 1])
        if b > a:
            out[i] = np.asarray(flow[a:b], np.float32).sum(0)
    return out


def crop_flip_flow(flow: np.ndarray, y: int, x: int, size, flip: bool, scale: int) -> np.ndarray:
    """Cut the flow ``(steps, h, w, 2)`` matching a frame crop at ``(y, x)`` of ``size`` pixels (a square's
    side or ``(height, width)``; frame coordinates, multiples of ``scale``), mirrored when the frames are."""
    s = scale
    size_h, size_w = (size, size) if np.isscalar(size) else size
    f = flow[:, y // s : (y + size_h) // s, x // s : (x + size_w) // s]
    if flip:
        f = f[:, :, ::-1].copy()
        f[..., 0] *= -1
    return np.ascontiguousarray(f)


def resize_clip(frames: np.ndarray, flow: np.ndarray | None, size: tuple[int, int],
                scale: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale a cropped clip to ``size`` ``(height, width)`` pixels: frames ``(F, h, w, 3)`` uint8 (bilinear)
    and its flow ``(steps, h / scale, w / scale, 2)`` (bilinear, each displacement stretched by the
    same factor as its axis), or ``None``."""
    import cv2

    height, width = size
    _, h, w, _ = frames.shape
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames])
    if flow is not None:
        fh, fw = height // scale, width // scale
        stretch = np.array([width / w, height / h], np.float32)  # (dx, dy)
        flow = np.stack([cv2.resize(np.asarray(f, np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR) for f in flow])
        flow = flow * stretch
    return frames, flow


def choose_crop(h: int, w: int, size, scale: int, candidates: int, rng: np.random.Generator,
                flow: np.ndarray | None = None, least: bool = False) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a crop of ``size`` (a square's side or ``(height, width)``) of an ``(h, w)``
    frame, multiples of ``scale``.

    ``candidates`` crops are drawn uniformly; with ``flow`` ``(steps, h / scale, w / scale, 2)`` the one
    whose flow speeds add up highest (``least``: lowest) is kept (ties: the first drawn), otherwise the first.
    """
    size_h, size_w = (size, size) if np.isscalar(size) else size
    picks = [(int(rng.integers(0, h - size_h + 1)) // scale * scale, int(rng.integers(0, w - size_w + 1)) // scale * scale)
             for _ in range(max(1, candidates))]
    if flow is None or len(picks) == 1 or flow.shape[0] == 0:
        return picks[0]
    speed = np.sqrt((np.asarray(flow, np.float32) ** 2).sum(-1)).sum(0)  # (h / s, w / s)
    table = np.pad(speed.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    nh, nw = size_h // scale, size_w // scale

    def motion(y: int, x: int) -> float:
        y0, x0 = y // scale, x // scale
        return float(table[y0 + nh, x0 + nw] - table[y0, x0 + nw] - table[y0 + nh, x0] + table[y0, x0])

    return (min if least else max)(picks, key=lambda yx: motion(*yx))
