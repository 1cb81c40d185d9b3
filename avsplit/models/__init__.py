"""Networks: one module per component, plus presets and the composed separator."""

from avsplit.models.config import PRESETS, ModelConfig, preset
from avsplit.models.separator import AVSeparator

__all__ = ["AVSeparator", "ModelConfig", "PRESETS", "preset", "build_model"]


def build_model(config: ModelConfig) -> AVSeparator:
    """The model a config describes (randomly initialised, or with the configured backbone weights)."""
    return AVSeparator(config)
