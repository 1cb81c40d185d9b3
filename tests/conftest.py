"""Shared test fixtures: tiny media files made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsplit import io as media


def write_test_video(
    path: Path,
    seconds: float = 2.0,
    fps: float = 24.0,
    size: tuple[int, int] = (160, 120),
    sample_rate: int | None = 22050,
    channels: int = 1,
    freq: float | tuple[float, ...] = 440.0,
) -> Path:
    """A video whose frame k has red level ``(3 * k) % 256`` and a moving white square, with a
    sine tone of ``freq`` Hz (one per channel when a tuple; no audio when ``sample_rate`` is None)."""
    w, h = size
    n = int(round(seconds * fps))
    audio = None
    if sample_rate:
        t = np.arange(int(round(seconds * sample_rate))) / sample_rate
        freqs = tuple(freq) if isinstance(freq, tuple) else (freq,) * channels
        tones = [(0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in freqs[:channels]]
        audio = np.stack(tones) if channels > 1 else tones[0]
    with media.VideoWriter(path, fps=fps, width=w, height=h, audio=audio, audio_rate=sample_rate) as writer:
        for k in range(n):
            frame = np.zeros((h, w, 3), np.uint8)
            frame[..., 0] = (3 * k) % 256
            x = (2 * k) % max(1, w - 10)
            frame[h // 2 - 5 : h // 2 + 5, x : x + 10] = 255
            writer.write(frame)
    return path


@pytest.fixture
def make_video(tmp_path):
    """Factory fixture: ``make_video(name, **kwargs)`` writes a test video under tmp_path."""

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_test_video(tmp_path / name, **kwargs)

    return _make


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A checkpoint of an untrained model of the ``tiny`` preset (seeded): runs the CLI in seconds."""
    import torch

    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model, preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_checkpoint(path, build_model(preset("tiny")).eval())


def make_bad_batch(folder: Path, good_video: Path) -> Path:
    """A folder with a zero-byte file, a text file named .mp4 and a copy of ``good_video`` under a
    name with a space and a non-ASCII character: a batch where two inputs must fail."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video")
    (folder / "good clip \u00e9.mp4").write_bytes(good_video.read_bytes())
    return folder


@pytest.fixture(scope="session")
def tiny_motion_weights(tmp_path_factory):
    """A checkpoint of an untrained ``tiny-motion`` model (seeded): sources are what moves."""
    import torch

    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model, preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wm") / "tiny-motion.safetensors"
    return save_checkpoint(path, build_model(preset("tiny-motion")).eval())


def write_still_video(path: Path, seconds: float = 2.0, size: tuple[int, int] = (160, 120), sample_rate: int = 22050) -> Path:
    """A still picture (the same frame throughout) with a sine tone: an album-art upload."""
    w, h = size
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frame = np.zeros((h, w, 3), np.uint8)
    frame[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 200
    with media.VideoWriter(path, fps=24, width=w, height=h, audio=tone, audio_rate=sample_rate) as writer:
        for _ in range(int(round(seconds * 24))):
            writer.write(frame)
    return path
