"""Appearance network (VAN): per-pixel visual features from frames.

A torchvision ResNet-18 trunk with output stride 16 (the last stage, when kept, is dilated instead
of strided), then a 3x3 convolution to K channels. Features are max-pooled over the frames of a
clip; the synthesizer pools them over space too (or keeps them per pixel).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avsplit.errors import CheckpointError
from avsplit.models.config import AppearanceConfig

#: Stage output channels of ResNet-18.
_STAGE_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _dilate_last_stage(stage: nn.Sequential, dilation: int = 2) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3x3 convolutions."""
    for module in stage.modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation // 2, dilation // 2)
                module.padding = (dilation // 2, dilation // 2)
        elif isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            module.dilation = (dilation, dilation)
            module.padding = (dilation, dilation)


def build_resnet18(weights: str = "none") -> nn.Module:
    """torchvision's ResNet-18, initialised from ``weights``: ``none``, ``imagenet`` or a file path.

    ``imagenet`` goes through torchvision's own weights enum (downloaded once, then cached by
    torch.hub). A path is a state dict (``.pth``/``.pt`` loaded with ``weights_only=True``, or
    ``.safetensors``) with torchvision's parameter names.
    """
    from torchvision.models import ResNet18_Weights, resnet18

    if weights in ("none", "", None):
        return resnet18(weights=None)
    if weights == "imagenet":
        return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    path = Path(weights)
    if not path.exists():
        raise CheckpointError("backbone weights file not found", path, "pass --backbone-weights none|imagenet|PATH")
    model = resnet18(weights=None)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported as a corrupt file
        # (torch's own text is many lines and suggests weights_only=False, i.e. running the file's code)
        pickled = "weights_only" in str(exc) or "Unsupported global" in str(exc)
        reason = ("the file holds pickled objects other than tensors, which are not loaded (they could run code)"
                  if pickled else "not a readable state dict (corrupt or truncated)")
        raise CheckpointError(f"cannot read backbone weights: {reason}", path,
                              "give a ResNet-18 state dict saved as tensors only (.pth of a state_dict, or .safetensors)") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    trunk_missing = [k for k in missing if not k.startswith("fc.")]
    if trunk_missing:
        raise CheckpointError(
            f"backbone weights lack {len(trunk_missing)} ResNet-18 parameters (e.g. {trunk_missing[0]})",
            path, "give a torchvision ResNet-18 state dict",
        )
    return model


class AppearanceNet(nn.Module):
    """Frames -> per-pixel K-channel features.

    Input: ``(batch, frames, 3, height, width)`` float, normalised with ImageNet statistics.
    Output: ``(batch, K, height / s, width / s)`` with s the output stride (16 for depth >= 3),
    max-pooled over frames, before any activation.
    """

    def __init__(self, channels: int, config: AppearanceConfig = AppearanceConfig()):
        super().__init__()
        if config.depth not in _STAGE_CHANNELS:
            raise ValueError(f"appearance depth must be 1..4, got {config.depth}")
        resnet = build_resnet18(config.backbone_weights)
        stages = [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4][: config.depth]
        if config.depth == 4:
            _dilate_last_stage(resnet.layer4)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(_STAGE_CHANNELS[config.depth], channels, kernel_size=3, padding=1)
        self.output_stride = {1: 4, 2: 8, 3: 16, 4: 16}[config.depth]

    def per_frame(self, frames: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` -> ``(n, K, H/s, W/s)``."""
        return self.head(self.stages(self.stem(frames)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, num_frames = frames.shape[:2]
        feats = self.per_frame(frames.flatten(0, 1))
        feats = feats.view(batch, num_frames, *feats.shape[1:])
        return feats.amax(dim=1)


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(..., 3, H, W)`` normalised with ImageNet statistics."""
    x = frames.movedim(-1, -3).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std
