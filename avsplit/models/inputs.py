"""What a model's visual side takes in: normalised frames and, for motion models, optical flow at the
model's flow resolution, computed the same way for the training cache and for separation.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from avsplit.dsp.flow import make_flow
from avsplit.models.appearance import normalize_frames
from avsplit.models.config import ModelConfig, MotionConfig


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
    return make_flow(motion.flow_backend, **flow_options(motion))


def compute_flow(frames: np.ndarray, motion: MotionConfig, estimator=None) -> np.ndarray:
    """uint8 frames ``(T, H, W, 3)`` -> float32 flow ``(T - 1, H // s, W // s, 2)`` at flow resolution."""
    est = estimator or flow_estimator(motion)
    return reduce_flow(np.asarray(est.sequence(frames), np.float32), motion.flow_scale).astype(np.float32)




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
