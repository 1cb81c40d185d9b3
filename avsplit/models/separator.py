"""The appearance-conditioned separator: appearance net + audio U-Net + synthesizer."""

from __future__ import annotations

import torch
from torch import nn

from avsplit.models.appearance import AppearanceNet
from avsplit.models.audio_unet import AudioUNet
from avsplit.models.config import ModelConfig
from avsplit.models.synthesizer import Synthesizer
from avsplit.transforms import LogFrequencyWarp, Spectrogram, log_magnitude


class AVSeparator(nn.Module):
    """Separates a mixture into the sounds of the given visual sources.

    The spectral front end (STFT, log-frequency warp) is part of the model so that a checkpoint
    fully defines how audio is analysed and resynthesised.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.appearance = AppearanceNet(config.channels, config.appearance)
        self.audio_net = AudioUNet(config.channels, config.audio_net)
        self.synthesizer = Synthesizer(config.channels)
        # Optional per-channel normalisation of pooled visual features before the sigmoid: keeps
        # the sigmoid out of saturation when the frame net is trained from scratch.
        self.visual_norm = nn.BatchNorm1d(config.channels) if config.visual_norm else None
        self.spectrogram = Spectrogram(config.audio)
        self.warp = LogFrequencyWarp(config.audio.n_freq, config.audio.log_freq_bins)

    # ------------------------------------------------------------------ audio side
    def analyse(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, samples)`` -> complex STFT ``(batch, freq, time)`` and the warped magnitude
        ``(batch, 1, log_freq, time)``."""
        spec = self.spectrogram.stft(audio)
        warped = self.warp.warp(spec.abs().unsqueeze(1)).clamp(min=0.0)
        return spec, warped

    def audio_features(self, warped_magnitude: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, log_freq, time)`` magnitude -> ``(batch, K, log_freq, time)``."""
        return self.audio_net(log_magnitude(warped_magnitude))

    # ------------------------------------------------------------------ visual side
    def visual_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames ``(batch, frames, 3, H, W)`` -> per-pixel features ``(batch, K, h, w)``."""
        return self.appearance(frames)

    def visual_vector(self, pooled: torch.Tensor) -> torch.Tensor:
        """Activation of pooled raw features ``(..., K)``: (optional normalisation, then) sigmoid."""
        if self.visual_norm is not None:
            shape = pooled.shape
            pooled = self.visual_norm(pooled.reshape(-1, shape[-1])).reshape(shape)
        return torch.sigmoid(pooled)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``(..., K, h, w)`` -> one vector per clip ``(..., K)``: spatial max, then activation."""
        return self.visual_vector(features.flatten(-2).amax(dim=-1))

    def activate_pixels(self, features: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``(..., K, h, w)`` features with the same activation as :meth:`pool` (each pixel
        treated as a region of its own)."""
        return self.visual_vector(features.movedim(-3, -1)).movedim(-1, -3)

    # ------------------------------------------------------------------ masks
    def mask_logits(self, visual: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """``(batch, sources, K)`` x ``(batch, K, log_freq, time)`` -> ``(batch, sources, log_freq, time)``."""
        return self.synthesizer(visual, audio_features)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask logits -> masks: sigmoid for binary masks, ReLU for ratio masks."""
        return torch.sigmoid(logits) if self.config.mask == "binary" else torch.relu(logits)

    def apply_masks(self, warped_masks: torch.Tensor, mixture_spec: torch.Tensor, length: int) -> torch.Tensor:
        """Warped masks ``(batch, sources, log_freq, time)`` on the mixture STFT ``(batch, freq, time)``
        -> waveforms ``(batch, sources, length)`` (mask x mixture magnitude, mixture phase)."""
        masks = self.warp.unwarp(warped_masks.float()).clamp(min=0.0)
        return self.spectrogram.istft(masks * mixture_spec.unsqueeze(1), length)

    # ------------------------------------------------------------------ whole clip
    def forward(self, mixture: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Separate ``mixture`` ``(batch, samples)`` into one waveform per visual source.

        ``frames``: normalised ``(batch, sources, frames, 3, H, W)``. Returns ``(batch, sources, samples)``.
        """
        batch, sources = frames.shape[:2]
        spec, warped = self.analyse(mixture)
        audio_feats = self.audio_features(warped)
        visual = self.pool(self.visual_features(frames.flatten(0, 1))).view(batch, sources, -1)
        masks = self.activate(self.mask_logits(visual, audio_feats))
        return self.apply_masks(masks, spec, mixture.shape[-1])
