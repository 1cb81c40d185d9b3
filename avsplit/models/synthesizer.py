"""Audio synthesizer network (ASN): visual features x audio features -> spectrogram mask logits."""

from __future__ import annotations

import torch
from torch import nn


class Synthesizer(nn.Module):
    """Per-channel scaled inner product of a visual feature vector with K audio feature maps, plus bias.

    ``mask[f, t] = sum_k scale_k * v_k * a_k[f, t] + bias``
    """

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Pooled mode.

        ``visual``: ``(batch, sources, K)``; ``audio``: ``(batch, K, freq, time)``.
        Returns mask logits ``(batch, sources, freq, time)``.
        """
        batch, k, freq, time = audio.shape
        weights = visual * self.scale  # (B, N, K)
        logits = torch.bmm(weights, audio.reshape(batch, k, freq * time))
        return logits.view(batch, -1, freq, time) + self.bias

    def pixelwise(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Pixel-wise mode: one mask per pixel.

        ``visual``: ``(batch, K, h, w)``; ``audio``: ``(batch, K, freq, time)``.
        Returns mask logits ``(batch, h, w, freq, time)``.
        """
        batch, k, h, w = visual.shape
        flat = visual.flatten(2).transpose(1, 2)  # (B, h*w, K)
        logits = self.forward(flat, audio)
        return logits.view(batch, h, w, *audio.shape[-2:])
