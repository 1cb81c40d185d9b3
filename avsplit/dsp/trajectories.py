"""Dense point trajectories from optical flow, in torch (batched, vectorised, differentiable).

A trajectory starts at every pixel of the first frame and is carried forward by the flow: the
point at ``p_t`` moves to ``p_{t+1} = p_t + flow_t(p_t)``, where ``flow_t`` is looked up at the
(sub-pixel) point by bilinear interpolation. The motion network sees, for every trajectory and
every step, the velocity along it and its displacement from where it started; both are indexed
by the trajectory's starting pixel, so the field lines up with the first frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dense_trajectories", "trajectory_field"]


def _sample(flow_t: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``flow_t`` ``(B, 2, H, W)`` at pixel points ``(B, 2, H, W)`` (x, y) -> ``(B, 2, H, W)``.

    Points outside the frame take the nearest border value (a point that leaves the picture keeps
    the motion of the edge it left by).
    """
    _, _, h, w = flow_t.shape
    gx = points[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = points[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(flow_t, grid, mode="bilinear", padding_mode="border", align_corners=True)


def dense_trajectories(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain ``flow`` ``(batch, steps, 2, H, W)`` -- per-step ``(dx, dy)`` pixel displacements from
    frame t to t+1 -- from every pixel of frame 0.

    Returns ``positions`` ``(batch, steps + 1, 2, H, W)``: the ``(x, y)`` pixel position at each frame
    of the trajectory that starts at pixel ``(x, y)`` of frame 0 (``positions[:, 0]`` is the pixel
    grid), and ``velocities`` ``(batch, steps, 2, H, W)``: the flow looked up along it.
    """
    if flow.ndim != 5 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (batch, steps, 2, H, W), got {tuple(flow.shape)}")
    b, steps, _, h, w = flow.shape
    flow = flow.float()
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    point = torch.stack([xs, ys]).unsqueeze(0).expand(b, 2, h, w)
    positions = [point]
    velocities = []
    for t in range(steps):
        v = _sample(flow[:, t], point)
        velocities.append(v)
        point = point + v
        positions.append(point)
    if not velocities:
        return torch.stack(positions, dim=1), flow.new_zeros(b, 0, 2, h, w)
    return torch.stack(positions, dim=1), torch.stack(velocities, dim=1)


def trajectory_field(flow: torch.Tensor, displacement_scale: float = 8.0) -> torch.Tensor:
    """The motion network's input: ``(batch, 4, steps, H, W)`` -- per step, the velocity along each
    trajectory and its displacement from its start (divided by ``displacement_scale`` pixels)."""
    positions, velocities = dense_trajectories(flow)
    displacement = (positions[:, 1:] - positions[:, :1]) / displacement_scale
    return torch.cat([velocities, displacement], dim=2).transpose(1, 2).contiguous()
