"""Camera motion: the part of optical flow that moves the whole picture (shake, pan, slow zoom).

A hand-held or zooming camera moves every pixel, so the flow of every object correlates with every
other's and with the background's; source discovery, which tells players apart by how each moves,
then sees one rhythm everywhere. :func:`remove_camera_motion` fits one affine motion per flow step
(translation, zoom, rotation and shear) to the pixels that follow it best and subtracts it, leaving
what moves *in* the scene.
"""

from __future__ import annotations

import torch

#: Reweighting rounds of the robust fit.
FIT_ROUNDS = 3
#: After the first fit, pixels whose residual exceeds this multiple of the median residual are left
#: out of the next fit (they move on their own).
OUTLIER_FACTOR = 1.5


def _design(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The affine design matrix of an ``(h, w)`` grid: ``(h * w, 3)`` columns 1, x, y with x and y in
    [-1, 1]."""
    ys = torch.linspace(-1.0, 1.0, h, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([torch.ones_like(gx), gx, gy], dim=-1).reshape(-1, 3)


def camera_motion(flow: torch.Tensor) -> torch.Tensor:
    """The affine motion of the whole picture in each step of ``flow`` ``(..., 2, h, w)``: a flow field of
    the same shape.

    Fitted by weighted least squares, then refitted :data:`FIT_ROUNDS` times without the pixels that
    move on their own (residual above :data:`OUTLIER_FACTOR` times the median). A still background
    gives (close to) zero.
    """
    *lead, two, h, w = flow.shape
    field = flow.float().reshape(-1, two, h * w)  # (n, 2, P)
    design = _design(h, w, flow.device)  # (P, 3)
    weights = torch.ones(field.shape[0], h * w, device=flow.device)  # (n, P)
    for _ in range(FIT_ROUNDS):
        weighted = design[None] * weights[..., None]  # (n, P, 3)
        normal = weighted.transpose(1, 2) @ design  # (n, 3, 3)
        normal = normal + 1e-6 * torch.eye(3, device=flow.device)
        rhs = weighted.transpose(1, 2) @ field.transpose(1, 2)  # (n, 3, 2)
        coef = torch.linalg.solve(normal, rhs)  # (n, 3, 2)
        fitted = (design @ coef).transpose(1, 2)  # (n, 2, P)
        residual = torch.linalg.vector_norm(field - fitted, dim=1)  # (n, P)
        limit = OUTLIER_FACTOR * residual.median(dim=1, keepdim=True).values + 1e-6
        weights = (residual <= limit).float()
    return fitted.reshape(*lead, two, h, w).to(flow.dtype)


def remove_camera_motion(flow: torch.Tensor) -> torch.Tensor:
    """``flow`` ``(..., 2, h, w)`` less :func:`camera_motion`: what moves relative to the picture."""
    return flow - camera_motion(flow)
