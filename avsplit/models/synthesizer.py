"""Audio synthesizer network (ASN): visual features x audio features -> spectrogram mask logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stretch_time(visual: torch.Tensor, frames: int) -> torch.Tensor:
    """Time-varying visual vectors ``(batch, sources, steps, K)`` -> ``(batch, sources, frames, K)`` by
    linear interpolation (steps evenly cover the same window as the spectrogram's frames)."""
    b, n, steps, k = visual.shape
    if steps == frames:
        return visual
    x = visual.permute(0, 1, 3, 2).reshape(b * n, k, steps)
    x = F.interpolate(x.float(), size=frames, mode="linear", align_corners=False).to(visual.dtype)
    return x.view(b, n, k, frames).permute(0, 1, 3, 2)


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

        ``visual``: ``(batch, sources, K)``, or time-varying ``(batch, sources, steps, K)`` (motion
        models; stretched to the spectrogram's frames); ``audio``: ``(batch, K, freq, time)``.
        Returns mask logits ``(batch, sources, freq, time)``.
        """
        batch, k, freq, time = audio.shape
        if visual.ndim == 4:
            weights = stretch_time(visual, time) * self.scale  # (B, N, T, K)
            return torch.einsum("bntk,bkft->bnft", weights.to(audio.dtype), audio) + self.bias
        weights = visual * self.scale  # (B, N, K)
        logits = torch.bmm(weights, audio.reshape(batch, k, freq * time))
        return logits.view(batch, -1, freq, time) + self.bias

    def pixelwise(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Pixel-wise mode: one mask per pixel.

        ``visual``: ``(batch, K, h, w)`` or time-varying ``(batch, steps, K, h, w)``;
        ``audio``: ``(batch, K, freq, time)``. Returns mask logits ``(batch, h, w, freq, time)``.
        """
        h, w = visual.shape[-2:]
        batch = visual.shape[0]
        if visual.ndim == 5:
            flat = visual.flatten(3).permute(0, 3, 1, 2)  # (B, h*w, T, K)
        else:
            flat = visual.flatten(2).transpose(1, 2)  # (B, h*w, K)
        logits = self.forward(flat, audio)
        return logits.view(batch, h, w, *audio.shape[-2:])
