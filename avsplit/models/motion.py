"""Motion analysis network (MAN): per-pixel, per-step motion features from a trajectory field.

An I3D-style network: 3x3x3 (inflated) convolutions with batch norm over the trajectory field
``(batch, 4, steps, H, W)`` of :func:`avsplit.dsp.trajectories.trajectory_field`. Space is reduced
three times by 2 (to the appearance net's grid, which :class:`~avsplit.models.fusion.MotionFusion`
resamples to exactly); time keeps its resolution, because *when* a thing moves is what ties it to
a sound.
"""

from __future__ import annotations

import torch
from torch import nn

from avsplit.models.config import MotionConfig
from avsplit.dsp.trajectories import trajectory_field


def _conv3d(c_in: int, c_out: int, spatial_stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel_size=3, stride=(1, spatial_stride, spatial_stride), padding=1, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


class _Block(nn.Module):
    """Two inflated 3x3x3 convolutions with a residual connection; the first may halve space."""

    def __init__(self, c_in: int, c_out: int, spatial_stride: int):
        super().__init__()
        self.conv1 = _conv3d(c_in, c_out, spatial_stride)
        self.conv2 = nn.Sequential(nn.Conv3d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm3d(c_out))
        self.skip = (nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=(1, spatial_stride, spatial_stride), bias=False),
                                   nn.BatchNorm3d(c_out))
                     if c_in != c_out or spatial_stride != 1 else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.skip(x))


class TrajectoryNet(nn.Module):
    """Flow ``(batch, steps, 2, H, W)`` -> motion features ``(batch, C, steps, H/8, W/8)``.

    The flow is first turned into dense trajectories (velocity along each trajectory and its
    displacement, indexed by the starting pixel), then through a stem and two residual blocks,
    each halving space, and a 1x1x1 projection to ``config.channels``.
    """

    def __init__(self, config: MotionConfig):
        super().__init__()
        w = config.width
        self.displacement_scale = config.displacement_scale
        self.input_norm = nn.BatchNorm3d(4)
        self.stem = _conv3d(4, w, spatial_stride=2)
        self.block1 = _Block(w, 2 * w, spatial_stride=2)
        self.block2 = _Block(2 * w, 2 * w, spatial_stride=2)
        self.head = nn.Conv3d(2 * w, config.channels, kernel_size=1)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        field = trajectory_field(flow, self.displacement_scale)  # (B, 4, T, H, W)
        x = self.stem(self.input_norm(field))
        x = self.block2(self.block1(x))
        return self.head(x)
