"""Networks: one module per component, plus presets and the composed separator."""

from avsplit.models.config import PRESETS, ModelConfig, preset
from avsplit.models.separator import AVSeparator, MotionSeparator

__all__ = ["AVSeparator", "MotionSeparator", "ModelConfig", "PRESETS", "preset", "build_model"]


def build_model(config: ModelConfig) -> AVSeparator:
    """The model a config describes (randomly initialised, or with the configured backbone weights)."""
    return MotionSeparator(config) if config.motion is not None else AVSeparator(config)
