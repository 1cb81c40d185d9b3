"""Mask refiner: a second look at the masks of one mixture's sources, all of them at once.

The synthesizer decides each spectrogram bin from the visual vector of *that* frame, so on
look-alike sources it can only say *when* a player is active, not which notes are whose. A note,
though, is one object over its whole duration: the player who started it (visible as a jolt at
its onset) owns its partials until they fade. The refiner sees the mixture's log magnitude, the
audio net's features, the mask logits of every source and their visual vectors over a wide
time-frequency window (about 3 s and 130 log-frequency rows centred on each bin, enough to reach
a note's onset and its harmonics), and predicts a correction to each source's logits. The same weights serve every source (the others enter as a
sum), so any number of sources works, and the output layer starts at zero: a new refiner is the
identity, and training it on top of a trained model starts exactly where that model is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avsplit.models.synthesizer import stretch_time

#: Dilations (frequency and time, at half resolution) of the refiner's residual blocks.
BLOCK_DILATIONS = (1, 2, 4, 8, 16, 1)


class _Block(nn.Module):
    """A residual 3x3 convolution with the same dilation along frequency and time."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.conv(x))


class MaskRefiner(nn.Module):
    """Refines the mask logits of a mixture's sources.

    ``logits``: ``(batch, sources, freq, time)`` (the synthesizer's); ``log_mix``: the mixture's
    log magnitude ``(batch, 1, freq, time)``; ``visual``: activated visual vectors ``(batch, sources,
    steps, K)`` (or ``(batch, sources, K)``); ``audio`` (with ``audio_channels``): the audio net's
    features of the mixture ``(batch, A, freq, time)``, what it heard in each bin. Returns refined
    logits ``(batch, sources, freq, time)``.
    Work is done at half resolution; 1x1 layers over the upsampled result and the full-resolution
    input planes put the detail back.
    """

    #: Input planes per source: log mixture, own logit, own probability, the others' summed probability.
    PLANES = 4

    def __init__(self, channels: int, visual_channels: int, audio_channels: int = 0):
        super().__init__()
        self.audio_channels = audio_channels
        self.stem = nn.Conv2d(self.PLANES + audio_channels, channels, 3, stride=2, padding=1)
        self.visual = nn.Linear(2 * visual_channels, channels)
        self.blocks = nn.Sequential(*[_Block(channels, d) for d in BLOCK_DILATIONS])
        self.merge = nn.Conv2d(self.PLANES + channels, channels, 1)
        self.out = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, logits: torch.Tensor, log_mix: torch.Tensor, visual: torch.Tensor,
                audio: torch.Tensor | None = None) -> torch.Tensor:
        batch, sources, freq, time = logits.shape
        logits = logits.float()
        prob = torch.sigmoid(logits)
        others = prob.sum(dim=1, keepdim=True) - prob
        mix = log_mix.float().expand(batch, sources, freq, time)
        planes = torch.stack([mix / 4.0, logits.clamp(-8.0, 8.0) / 4.0, prob, others], dim=2)  # (B, S, 4, F, T)
        if visual.ndim == 3:
            visual = visual.unsqueeze(2)
        visual = stretch_time(visual.float(), time)  # (B, S, T, K)
        other_visual = (visual.sum(dim=1, keepdim=True) - visual) / max(1, sources - 1)
        visual_bias = self.visual(torch.cat([visual, other_visual], dim=-1))  # (B, S, T, C)

        planes = planes.flatten(0, 1).contiguous(memory_format=torch.channels_last)  # (B*S, 4, F, T)
        stem_in = planes
        if self.audio_channels:
            if audio is None:
                raise ValueError("this refiner needs the audio net's features")
            heard = audio.float().repeat_interleave(sources, dim=0)  # (B*S, A, F, T)
            stem_in = torch.cat([planes, heard.contiguous(memory_format=torch.channels_last)], dim=1)
        low = F.relu(self.stem(stem_in))  # (B*S, C, F/2, T/2)
        bias = visual_bias.flatten(0, 1).transpose(1, 2).unsqueeze(2)  # (B*S, C, 1, T)
        bias = F.interpolate(bias, size=(1, low.shape[-1]), mode="bilinear", align_corners=False)
        low = self.blocks(low + bias)
        up = F.interpolate(low, size=(freq, time), mode="nearest")
        x = F.relu(self.merge(torch.cat([planes, up], dim=1)))
        delta = self.out(x).view(batch, sources, freq, time)
        return logits + delta
