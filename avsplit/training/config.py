"""Training settings (:class:`TrainConfig`), their presets, and the parts of a model that can be frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from avsplit.errors import ConfigError
from avsplit.runtime import AMP_MODES

#: What the category head can read (:attr:`TrainConfig.category_on`).
CATEGORY_ON = ("appearance", "vectors")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults follow the paper (SGD, momentum 0.9, weight decay 1e-4,
    lr 1e-4 for the frame net and 1e-3 for the sound net and synthesizer, x0.1 steps)."""

    steps: int = 20000
    batch_size: int = 8
    optimizer: str = "sgd"
    lr_frame: float = 1e-4
    lr_sound: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: tuple[float, ...] = (0.6, 0.85)
    """Fractions of ``steps`` after which every learning rate is multiplied by 0.1."""
    seed: int = 0
    val_every: int = 500
    val_mixtures: int = 32
    checkpoint_every: int = 500
    log_every: int = 20
    amp: str = "auto"
    """``auto`` (bf16 on GPU and on CPUs with native bf16), ``bf16`` or ``off``."""
    grad_clip: float = 5.0
    curriculum: bool = False
    """Stages from easy pairs to hard ones and from 2 to 3 sources (:mod:`avsplit.data.curriculum`)."""
    curriculum_stages: str = ""
    """Custom stages, ``PAIRS:SOURCES:UNTIL,...`` (:func:`avsplit.data.curriculum.parse_stages`);
    empty: the default stages."""
    timbre_db: float = 0.0
    """Random equaliser per source (:func:`avsplit.data.sounds.random_timbre`), band gains up to
    +-timbre_db dB; 0: off."""
    sound_styles: float = 0.0
    """Share of sources played in another sound style (:attr:`avsplit.data.mixing.Augment.sound_styles`)."""
    picture_variety: bool = False
    """Picture augmentations for varied pictures (:data:`avsplit.data.mixing.PICTURE_VARIETY`): crops
    that follow the motion (a source off-centre stays in view), grey and channel-swapped clips."""
    picture_styles: float = 0.0
    """Share of clips redrawn in another picture style (:attr:`avsplit.data.mixing.Augment.styles`)."""
    composite: float = 0.0
    """Share of two-source examples shown as one picture with both sources side by side, each
    source's vector pooled over its own half (:func:`avsplit.data.composites.side_by_side`)."""
    inset: float = 0.0
    """Share of those composites drawn as one source's clip inset in the other's picture instead
    (:func:`avsplit.data.composites.picture_in_picture`)."""
    equal_level: bool = False
    """Sources of an example brought to the same RMS before their random gain
    (:attr:`avsplit.data.mixing.Augment.equal_level`)."""
    silent: float = 0.0
    """Share of examples with one silent source, shown but not heard (:attr:`avsplit.data.mixing.Augment.silent`)."""
    silent_regions: float = 0.0
    """Share of examples with one source replaced by a silent region: another source's picture outside
    its player, not heard (:attr:`avsplit.data.mixing.Augment.silent_regions`)."""
    own_weight: float = 0.0
    """Weight of the same loss on each source's *own* mask logits (before the mask refiner), so
    that what a region claims by itself, which the automatic count compares, stays each source's
    ideal mask; 0: off (only the refined masks are trained)."""
    gain_db: float = 6.0
    """Random gain of each mixed source, uniform in ``[-gain_db, +gain_db]`` dB
    (:attr:`avsplit.data.mixing.Augment.gain_db`)."""
    zoom: float = 1.0
    """Largest zoom of the crops (:attr:`avsplit.data.mixing.Augment.zoom`); 1: off."""
    category_weight: float = 0.0
    """Weight of a cross-entropy on each source's category (the folder its video is filed under),
    read by a linear head from the pooled appearance features (:mod:`avsplit.training.category`);
    0: off (pure self-supervision)."""
    category_warmup: int = 0
    """Steps at the start of a run (counted from its step 0, a resumed run included) in which the
    category loss trains only its head, at a higher learning rate (a linear probe on fixed features):
    the pooled features are detached, so a new, random head's large early gradients do not reach the
    frame network of a model started with ``--init``."""
    category_on: str = "appearance"
    """What the category head reads: each source's pooled ``appearance`` features, or the visual
    ``vectors`` the masks are made from (after the motion fusion)."""
    lr_motion: float | None = None
    """Learning rate of the motion pathway and fusion (default: ``lr_sound``); higher than the others
    when they start from a trained appearance model (``--init``)."""
    freeze: tuple[str, ...] = ()
    """Parts kept as they are (no gradient, batch-norm statistics fixed), when fine-tuning from
    ``--init``: any of :data:`FREEZABLE`. A frozen part costs no backward pass."""

    def __post_init__(self) -> None:
        """Reject an unknown choice when the settings are made, before any data is read."""
        for option, value, choices in (("--category-on", self.category_on, CATEGORY_ON),
                                       ("--optimizer", self.optimizer, OPTIMIZERS), ("--amp", self.amp, AMP_MODES)):
            if value not in choices:
                raise ConfigError(f"unknown {option} {value!r}", fix="use " + " or ".join(choices))


#: Parts of a model ``TrainConfig.freeze`` can hold fixed, and the submodules each one names.
#: ``base`` (``None``) is every submodule but the mask refiner (to train a refiner on top of a trained model).
FREEZABLE = {"frame": ("appearance",), "sound": ("audio_net",), "motion": ("motion_net",), "base": None}


#: Optimisation defaults per preset. ``small`` trains from scratch on CPU, where Adam converges
#: far sooner than the paper's SGD (which assumed an ImageNet-initialised frame net and GPUs).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "sop": TrainConfig(),
    "small": TrainConfig(steps=3500, batch_size=8, optimizer="adam", lr_frame=1e-3, lr_sound=1e-3,
                         weight_decay=0.0, lr_steps=(0.7, 0.9), val_every=250, checkpoint_every=250),
    "small-motion": TrainConfig(steps=1600, batch_size=8, optimizer="adam", lr_frame=1e-4, lr_sound=3e-4, lr_motion=1e-3,
                                weight_decay=0.0, lr_steps=(0.7, 0.9), val_every=250, checkpoint_every=250, curriculum=True),
    "som": TrainConfig(curriculum=True),
    "tiny": TrainConfig(steps=20, batch_size=2, optimizer="adam", lr_frame=1e-3, lr_sound=1e-3, weight_decay=0.0, amp="off",
                        val_every=10, val_mixtures=2, checkpoint_every=10, log_every=5),
}
TRAIN_PRESETS["tiny-motion"] = dataclasses.replace(TRAIN_PRESETS["tiny"], curriculum=True)
