"""Model configuration and presets.

A :class:`ModelConfig` is everything needed to rebuild a model; it is stored as JSON inside every
checkpoint. Presets: ``sop`` (the Sound of Pixels paper's settings), ``small`` (a reduced model
that trains to a useful level on 2 CPU cores within an hour), ``small-motion`` (``small`` plus the
motion pathway; the shipped default), ``som`` (Sound of Motions, paper scale), ``tiny`` (for
tests: the whole CLI runs in seconds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from avsplit.config import AudioSettings, VideoSettings, from_dict, to_dict
from avsplit.dsp.flow import BACKENDS
from avsplit.errors import ConfigError

MASK_TYPES = ("binary", "ratio")
FUSION_HEADS = ("synthesizer", "film")


@dataclass(frozen=True)
class AppearanceConfig:
    """Appearance network (VAN): a ResNet-18 trunk with output stride 16 and a K-channel head."""

    depth: int = 4
    """ResNet stages kept (4: all, the last one dilated; 3: up to layer3, which is already stride 16)."""
    backbone_weights: str = "none"
    """``none``, ``imagenet`` (torchvision's weights enum, needs network once) or a path."""


@dataclass(frozen=True)
class AudioNetConfig:
    """Audio network (AAN): a U-Net over the warped log magnitude."""

    levels: int = 7
    base_channels: int = 64


@dataclass(frozen=True)
class MotionConfig:
    """Motion analysis network (MAN): dense trajectories from cached optical flow -> 3D CNN -> fusion.

    The flow backend is part of the model: a model sees flow of the kind it was trained on, and
    asking for another is an error (:func:`check_flow_backend`).
    """

    flow_backend: str = "dis"
    """``dis`` (OpenCV DIS, CPU, no weights) or ``raft`` (torchvision RAFT, GPU)."""
    flow_preset: str = "medium"
    """DIS preset (``ultrafast``, ``fast``, ``medium``)."""
    flow_scale: int = 2
    """Flow is computed on the model's frames and stored at 1/``flow_scale`` of their size."""
    channels: int = 32
    """Motion feature channels."""
    width: int = 16
    """Base width of the trajectory CNN."""
    displacement_scale: float = 8.0
    """Trajectory displacements are divided by this many (flow-resolution) pixels."""
    fusion: str = "synthesizer"
    """``synthesizer`` (time-varying visual vector x audio features; pixel-wise masks kept) or
    ``film`` (FiLM of the U-Net decoder, which predicts the mask itself)."""
    temporal_kernel: int = 0
    """Steps of motion history and future each visual vector sees (odd; 0: none): a residual
    temporal convolution over the pooled per-step features, so that the vector at spectrogram
    frame t can say *when* this source's recent onsets were, and the inner product with the audio
    features can match a note to the player who started it (:class:`~avsplit.models.fusion.TemporalContext`)."""

    def __post_init__(self):
        if self.fusion not in FUSION_HEADS:
            raise ConfigError(f"fusion must be one of {FUSION_HEADS}, got {self.fusion!r}")
        if self.flow_backend not in BACKENDS:
            raise ConfigError(f"flow backend must be one of {BACKENDS}, got {self.flow_backend!r}")
        if self.flow_scale < 1:
            raise ConfigError("flow_scale must be >= 1")
        if self.temporal_kernel < 0 or (self.temporal_kernel and self.temporal_kernel % 2 == 0):
            raise ConfigError(f"temporal_kernel must be 0 or odd, got {self.temporal_kernel}")


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "sop"
    audio: AudioSettings = AudioSettings()
    video: VideoSettings = VideoSettings()
    channels: int = 32
    """K: feature channels shared by the appearance net, the audio net and the synthesizer."""
    appearance: AppearanceConfig = AppearanceConfig()
    audio_net: AudioNetConfig = AudioNetConfig()
    mask: str = "binary"
    """``binary`` (target: source > half the mixture; weighted BCE) or ``ratio`` (weighted L1)."""
    num_mix: int = 2
    """Sources mixed per training example."""
    visual_norm: bool = False
    """Normalise pooled visual features per channel (BatchNorm) before the sigmoid. Off in the
    paper's setting; on for models whose frame net starts from scratch, where it speeds up learning."""
    motion: MotionConfig | None = None
    """The motion pathway (Sound of Motions); ``None`` for appearance-only models."""
    refiner: int = 0
    """Channels of the mask refiner (0: none): a second network that sees the mask logits of all
    of a mixture's sources together, with the mixture and the visual vectors, over seconds of
    context, and corrects them (:class:`~avsplit.models.refiner.MaskRefiner`)."""

    @property
    def frames_per_window(self) -> int:
        """Frames a window needs: ``num_frames`` for appearance models; for motion models every
        frame of the window at the model's frame rate (the appearance frames are picked among them)."""
        if self.motion is None:
            return self.video.num_frames
        return max(2, int(round(self.audio.clip_seconds * self.video.fps)))

    def appearance_frame_indices(self) -> list[int]:
        """Which of the ``frames_per_window`` frames the appearance net sees (evenly spread)."""
        n, total = self.video.num_frames, self.frames_per_window
        if self.motion is None:
            return list(range(n))
        return [min(total - 1, int((j + 0.5) * total / n)) for j in range(n)]

    def __post_init__(self):
        if self.refiner < 0:
            raise ConfigError(f"refiner channels must be 0 (none) or positive, got {self.refiner}")
        if self.refiner and self.mask != "binary":
            raise ConfigError("the mask refiner works on binary masks", fix="use mask 'binary' or no refiner")
        if self.mask not in MASK_TYPES:
            raise ConfigError(f"mask must be one of {MASK_TYPES}, got {self.mask!r}")
        if self.audio.log_freq_bins % (2 ** self.audio_net.levels) or self.audio.n_stft_frames % (2 ** self.audio_net.levels):
            raise ConfigError(
                f"the warped spectrogram ({self.audio.log_freq_bins} x {self.audio.n_stft_frames}) must be divisible "
                f"by 2^{self.audio_net.levels} for a {self.audio_net.levels}-level U-Net"
            )

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return from_dict(cls, data)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # Paper settings: 11025 Hz, 65535-sample clips, STFT 1022/256 -> 512x256 warped to 256 rows,
    # 7-level U-Net with 64 base channels, K=32, 3 frames of 224 px, dilated ResNet-18.
    "sop": ModelConfig(preset="sop"),
    # Reduced for CPUs: same audio front end (comparable masks), 2 frames of 112 px, ResNet-18 up to
    # layer3 (already stride 16), 16 channels, a U-Net with 32 base channels.
    "small": ModelConfig(
        preset="small",
        video=VideoSettings(fps=8.0, short_side=128, crop_size=112, num_frames=2),
        channels=16,
        appearance=AppearanceConfig(depth=3),
        audio_net=AudioNetConfig(levels=7, base_channels=32),
        visual_norm=True,
    ),
    # Sound of Motions: the paper-scale appearance model plus the motion pathway.
    "som": ModelConfig(preset="som", motion=MotionConfig(channels=64, width=32)),
    # For tests: short clips, a few channels; runs the whole pipeline in seconds.
    "tiny": ModelConfig(
        preset="tiny",
        audio=AudioSettings(sample_rate=8000, clip_samples=8191, n_fft=254, hop_length=64, log_freq_bins=64),
        video=VideoSettings(fps=4.0, short_side=72, crop_size=64, num_frames=1),
        channels=4,
        appearance=AppearanceConfig(depth=2),
        audio_net=AudioNetConfig(levels=4, base_channels=4),
    ),
}
#: The small appearance model plus a small motion pathway (CPU-trainable); its appearance part can
#: start from a trained ``small`` checkpoint (``train --init``).
PRESETS["small-motion"] = PRESETS["small"].replace(preset="small-motion", motion=MotionConfig(channels=16, width=16))
#: The tiny test config with a tiny motion pathway.
PRESETS["tiny-motion"] = PRESETS["tiny"].replace(
    preset="tiny-motion", video=VideoSettings(fps=4.0, short_side=72, crop_size=64, num_frames=1),
    motion=MotionConfig(channels=4, width=4, flow_preset="ultrafast"))


def check_flow_backend(config: ModelConfig, requested: str | None) -> None:
    """A clear error when ``requested`` (a user's ``--flow-backend``) is not the model's backend."""
    if requested in (None, "") or config.motion is None:
        return
    if requested != config.motion.flow_backend:
        raise ConfigError(
            f"the model was trained on {config.motion.flow_backend!r} optical flow, not {requested!r}",
            fix=f"use --flow-backend {config.motion.flow_backend} (or a model trained on {requested} flow)")


def preset(name: str, **overrides) -> ModelConfig:
    """A preset by name, with optional top-level overrides (e.g. ``mask="ratio"``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}", fix=f"choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg


__all__ = ["AppearanceConfig", "AudioNetConfig", "ModelConfig", "MotionConfig", "PRESETS", "check_flow_backend", "preset", "field"]
