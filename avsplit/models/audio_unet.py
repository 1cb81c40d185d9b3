"""Audio network (AAN): a U-Net over the log magnitude of the warped mixture spectrogram."""

from __future__ import annotations

import torch
from torch import nn

from avsplit.models.config import AudioNetConfig


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=last),
    ]
    if not last:
        layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class AudioUNet(nn.Module):
    """``(batch, 1, freq, time)`` log magnitude -> ``(batch, K, freq, time)`` audio features.

    ``levels`` stride-2 4x4 convolutions down (channels base, 2 base, 4 base, 8 base, then 8 base),
    and as many bilinear-upsample + 3x3 convolutions up, each concatenated with the encoder output
    of the same size. ``freq`` and ``time`` must be divisible by ``2 ** levels``.
    """

    def __init__(self, channels: int, config: AudioNetConfig = AudioNetConfig()):
        super().__init__()
        b, n = config.base_channels, config.levels
        widths = [b * min(2**i, 8) for i in range(n)]  # encoder outputs
        self.input_norm = nn.BatchNorm2d(1)
        self.down = nn.ModuleList(
            [_down(1 if i == 0 else widths[i - 1], widths[i], norm=0 < i < n - 1) for i in range(n)]
        )
        up = []
        for i in reversed(range(n)):
            c_in = widths[i] if i == n - 1 else widths[i] * 2  # deepest has no skip concatenated yet
            if i == 0:
                up.append(_up(c_in, channels, last=True))
            else:
                up.append(_up(c_in, widths[i - 1]))
        self.up = nn.ModuleList(up)
        self.levels = n

        self.widths = widths

    def decoder_widths(self) -> list[int]:
        """Channels out of each decoder layer but the last (the ones FiLM modulates)."""
        return [self.widths[i - 1] for i in reversed(range(1, self.levels))]

    def encode(self, log_mag: torch.Tensor) -> list[torch.Tensor]:
        """``(batch, 1, freq, time)`` -> the encoder outputs, shallow to deep."""
        x = self.input_norm(log_mag)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        return skips

    def decode(self, skips: list[torch.Tensor], film=None) -> torch.Tensor:
        """Encoder outputs -> ``(batch, out, freq, time)``. ``film(i, x)``, when given, modulates
        the output of decoder layer ``i`` (all but the last) before its skip is concatenated."""
        skips = list(skips)
        x = skips.pop()
        for i, layer in enumerate(self.up):
            x = layer(x)
            if skips:
                if film is not None:
                    x = film(i, x)
                x = torch.cat([x, skips.pop()], dim=1)
        return x

    def forward(self, log_mag: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(log_mag))
