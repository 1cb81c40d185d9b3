"""Audio and video settings shared by preprocessing, the models and the checkpoints.

Defaults are the published Sound of Pixels settings (11025 Hz, 65535-sample clips, STFT window
1022 with hop 256 -> 512 x 256, warped to 256 log-frequency rows; frames at 8 fps, 224 px).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class AudioSettings:
    """How audio is prepared for a model."""

    sample_rate: int = 11025
    clip_samples: int = 65535
    n_fft: int = 1022
    hop_length: int = 256
    log_freq_bins: int = 256

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate

    @property
    def n_freq(self) -> int:
        """Rows of the linear-frequency STFT (``n_fft // 2 + 1``)."""
        return self.n_fft // 2 + 1

    @property
    def n_stft_frames(self) -> int:
        """Columns of the STFT of one clip (centred frames)."""
        return self.clip_samples // self.hop_length + 1


@dataclass(frozen=True)
class VideoSettings:
    """How frames are prepared for a model.

    Frames are decoded at ``fps`` and resized by FFmpeg so that their short side is
    ``short_side`` (aspect ratio kept, sizes rounded to even numbers); the appearance network sees
    ``num_frames`` frames of ``crop_size`` x ``crop_size`` from inside each clip's window.
    """

    fps: float = 8.0
    short_side: int = 256
    crop_size: int = 224
    num_frames: int = 3


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that decides the content of a preprocessing-cache entry."""

    audio: AudioSettings = AudioSettings()
    video: VideoSettings = VideoSettings()

    def key_dict(self) -> dict[str, Any]:
        """The settings that change cached content (used in the cache key)."""
        return {
            "sample_rate": self.audio.sample_rate,
            "fps": self.video.fps,
            "short_side": self.video.short_side,
        }


def to_dict(obj: Any) -> dict[str, Any]:
    """A (nested) dataclass as a JSON-ready dict."""
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a (nested) frozen dataclass from :func:`to_dict` output; unknown keys are an error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        target = _resolve_dataclass(cls, ftype)
        if target is not None and isinstance(value, Mapping):
            value = from_dict(target, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _resolve_dataclass(owner: type, ftype: Any) -> type | None:
    if isinstance(ftype, str):
        import sys

        name = ftype.replace("| None", "").replace("Optional[", "").strip(" ]")
        ftype = getattr(sys.modules[owner.__module__], name, None)
    return ftype if dataclasses.is_dataclass(ftype) else None


def dumps(obj: Any) -> str:
    """Canonical JSON of a settings dataclass (sorted keys): stable across runs for cache keys."""
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"))
