"""Fusion of appearance and motion features (Sound of Motions).

An attention map computed from the appearance features (1x1 convolution to one channel, sigmoid)
weights the motion features, which are then concatenated with the appearance features and
projected back to K channels, per time step. The projection starts as "appearance only" (identity
on the appearance channels, zero on the motion ones), so a model whose appearance part comes from
a trained appearance-only checkpoint starts exactly where that model was and learns to use motion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MotionFusion(nn.Module):
    """Appearance ``(batch, K, h, w)`` + motion ``(batch, M, steps, h', w')`` -> ``(batch, steps, K, h, w)``."""

    def __init__(self, channels: int, motion_channels: int):
        super().__init__()
        self.attention = nn.Conv2d(channels, 1, kernel_size=1)
        self.project = nn.Conv3d(channels + motion_channels, channels, kernel_size=1)
        with torch.no_grad():
            self.project.weight.zero_()
            self.project.weight[:, :channels, 0, 0, 0].copy_(torch.eye(channels))
            self.project.bias.zero_()

    def attention_map(self, appearance: torch.Tensor) -> torch.Tensor:
        """``(batch, K, h, w)`` -> ``(batch, 1, h, w)`` in [0, 1]: where motion matters."""
        return torch.sigmoid(self.attention(appearance))

    def forward(self, appearance: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        batch, k, h, w = appearance.shape
        steps = motion.shape[2]
        if motion.shape[-2:] != (h, w):
            motion = F.interpolate(motion.flatten(1, 2), size=(h, w), mode="bilinear", align_corners=False)
            motion = motion.view(batch, -1, steps, h, w)
        weighted = motion * self.attention_map(appearance).unsqueeze(2)
        both = torch.cat([appearance.unsqueeze(2).expand(-1, -1, steps, -1, -1), weighted.to(appearance.dtype)], dim=1)
        return self.project(both).transpose(1, 2)  # (B, T, K, h, w)


class TemporalContext(nn.Module):
    """A residual temporal convolution over per-step feature vectors ``(..., steps, K)`` -> the same shape.

    After pooling over a source's region, the vector of step t only describes the motion around
    t. Separating two players of the same kind needs more: a note belongs to the player who
    moved (jolted) when it *started*, which may be a second before the frame being masked. With
    this convolution each step's vector also carries the features of ``kernel // 2`` steps
    before and after it (edges padded by repetition), so the synthesizer's inner product with the
    audio features (which can describe when a bin's note started) can match the two. It starts as
    the identity (zero weights), so a model initialised from one without it starts unchanged.
    """

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size=kernel)
        self.pad = kernel // 2
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, (steps, k) = x.shape[:-2], x.shape[-2:]
        flat = x.reshape(-1, steps, k).transpose(1, 2)  # (n, K, steps)
        padded = F.pad(flat.float(), (self.pad, self.pad), mode="replicate").to(self.conv.weight.dtype)
        out = flat + self.conv(padded).to(flat.dtype)
        return out.transpose(1, 2).reshape(*lead, steps, k)
