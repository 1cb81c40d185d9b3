"""Optical flow for the motion network: cached once per training video, computed on the fly for
separation, and cut into per-window, per-crop pieces exactly the same way in both cases.

Flow is computed between consecutive frames at the model's frame rate and size (the cached
frames), then reduced by ``flow_scale`` (area average; displacements divided by the same factor)
and stored as float16 ``(T - 1, H / s, W / s, 2)`` ``(dx, dy)`` arrays named ``flow`` in the cache
entry (:class:`FlowExtra`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from avsplit.data.entry import CachedVideo, EntryWriter
from avsplit.models.appearance import normalize_frames
from avsplit.models.config import ModelConfig, MotionConfig

#: Frames processed per chunk when computing a long video's flow.
FLOW_CHUNK = 64


def flow_options(motion: MotionConfig) -> dict:
    return {"preset": motion.flow_preset} if motion.flow_backend == "dis" else {}


def reduce_flow(flow: np.ndarray, scale: int) -> np.ndarray:
    """``(..., H, W, 2)`` flow -> ``(..., H // s, W // s, 2)``: area average, displacements / s."""
    if scale == 1:
        return flow
    h, w = flow.shape[-3] // scale * scale, flow.shape[-2] // scale * scale
    out = np.zeros((*flow.shape[:-3], h // scale, w // scale, flow.shape[-1]), np.result_type(flow.dtype, np.float32))
    for dy in range(scale):  # summing strided views: much faster than a mean over reshaped axes
        for dx in range(scale):
            out += flow[..., dy:h:scale, dx:w:scale, :]
    out /= scale * scale * scale
    return out


@functools.lru_cache(maxsize=4)
def flow_estimator(motion: MotionConfig):
    """The flow estimator of a motion config, made once per process (RAFT loads its weights here)."""
    from avsplit.dsp.flow import make_flow

    return make_flow(motion.flow_backend, **flow_options(motion))


def compute_flow(frames: np.ndarray, motion: MotionConfig, estimator=None) -> np.ndarray:
    """uint8 frames ``(T, H, W, 3)`` -> float32 flow ``(T - 1, H // s, W // s, 2)`` at flow resolution."""
    est = estimator or flow_estimator(motion)
    return reduce_flow(np.asarray(est.sequence(frames), np.float32), motion.flow_scale).astype(np.float32)


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


def crop_flip_flow(flow: np.ndarray, y: int, x: int, size: int, flip: bool, scale: int) -> np.ndarray:
    """Cut the flow ``(steps, h, w, 2)`` matching a frame crop at ``(y, x)`` of ``size`` pixels (frame
    coordinates, multiples of ``scale``), mirrored when the frames are."""
    s = scale
    f = flow[:, y // s : (y + size) // s, x // s : (x + size) // s]
    if flip:
        f = f[:, :, ::-1].copy()
        f[..., 0] *= -1
    return np.ascontiguousarray(f)


def visual_inputs(config: ModelConfig, frames: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the visual side of a model needs from a window's frames, for separation.

    ``frames``: uint8 ``(batch, frames_per_window, H, W, 3)``. Returns normalised appearance frames
    ``(batch, num_frames, 3, H, W)`` and, for motion models, flow ``(batch, steps, 2, h, w)``
    computed here (the same way as the cache does).
    """
    frames = np.ascontiguousarray(frames)
    if config.motion is None:
        return normalize_frames(torch.from_numpy(frames).to(device)), None
    pick = config.appearance_frame_indices()
    app = normalize_frames(torch.from_numpy(np.ascontiguousarray(frames[:, pick])).to(device))
    flows = np.stack([compute_flow(f, config.motion) for f in frames])  # (B, T-1, h, w, 2)
    return app, torch.from_numpy(flows).permute(0, 1, 4, 2, 3).contiguous().to(device)
