"""Where and how computation runs: the device, autocast (bf16 where it is fast), the cache folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from avsplit.errors import ConfigError


def pick_device(device: str | None) -> torch.device:
    """``None``/``auto``: CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}", fix="use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was requested but is not available", fix="use --device cpu")
    return dev


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX), where bf16 autocast
    roughly doubles training throughput."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: ``--amp`` settings (:func:`autocast_for`).
AMP_MODES = ("auto", "bf16", "off")


def autocast_for(device: torch.device, amp: str):
    """``auto``: bf16 on GPU, and on CPUs with native bf16; ``bf16``: always; ``off``: never."""
    if amp not in AMP_MODES:
        raise ConfigError(f"unknown --amp {amp!r}", fix="use auto, bf16 or off")
    use = amp == "bf16" or (amp == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())))
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)




def default_cache_dir() -> Path:
    base = os.environ.get("AVSPLIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "avsplit")
    return Path(base) / "preprocess"
