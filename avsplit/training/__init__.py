"""Self-supervised mix-and-separate training (``avsplit train``): :mod:`.config` (settings and
presets), :mod:`.loss`, :mod:`.category` (weak labels), :mod:`.optimizer` (freezing, learning
rates, schedule), :mod:`.state` (resume state, logs) and :mod:`.loop` (the run)."""

from avsplit.training.config import FREEZABLE, TRAIN_PRESETS, TrainConfig
from avsplit.training.loop import TrainSummary, train
from avsplit.training.loss import MixSeparateLoss
from avsplit.training.optimizer import frozen_modules, make_optimizer
from avsplit.training.state import init_from_checkpoint

__all__ = ["FREEZABLE", "TRAIN_PRESETS", "MixSeparateLoss", "TrainConfig", "TrainSummary", "frozen_modules",
           "init_from_checkpoint", "make_optimizer", "train"]
