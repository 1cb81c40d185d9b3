"""Planning a synthetic dataset: which videos a run makes, each with its own randomness drawn from
``(seed, kind, index)`` only, so the result does not depend on ``jobs`` or on which videos already exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit.errors import ConfigError
from avsplit.synth.instruments import Category

_SEED_MASK = (1 << 64) - 1
_KIND_CODE = {"plan": 0, "solo": 1, "duet": 2, "duet-kinds": 3}


@dataclass(frozen=True)
class Job:
    """One video to make: ``solo`` or ``duet`` number ``index``, of instruments ``categories``."""

    kind: str
    index: int
    categories: tuple[str, ...]
    video: Path

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index:04d}"


def seed_sequence(seed: int, kind: str, index: int) -> np.random.SeedSequence:
    """The randomness of one thing a run draws (``kind``: ``plan``, ``solo``, ``duet``, ``duet-kinds``)."""
    return np.random.SeedSequence([int(seed) & _SEED_MASK, _KIND_CODE[kind], int(index)])


def plan_videos(out: Path, solos: int, duets: int, same_kind: float, seed: int, cats: Sequence[Category]) -> list[Job]:
    """The videos of a run: solos spread evenly over ``cats`` (in a drawn order), duets of two different
    instruments or, for ``round(duets * same_kind)`` of them, two of the same kind."""
    plan_rng = np.random.default_rng(seed_sequence(seed, "plan", 0))
    order = plan_rng.permutation(len(cats))
    jobs: list[Job] = []
    for i in range(solos):
        cat = cats[int(order[i % len(cats)])]
        jobs.append(Job("solo", i, (cat.name,), out / "solos" / cat.name / f"solo-{i:04d}.mp4"))
    n_same = int(round(duets * same_kind))
    same = {int(i) for i in plan_rng.permutation(duets)[:n_same]} if duets else set()
    if duets - n_same > 0 and len(cats) < 2:
        raise ConfigError(
            "duets of two different instruments need at least two categories", None,
            "give more --categories, or --same-kind 1",
        )
    for i in range(duets):
        rng = np.random.default_rng(seed_sequence(seed, "duet-kinds", i))
        if i in same:
            name = cats[int(rng.integers(len(cats)))].name
            names = (name, name)
        else:
            a, b = rng.choice(len(cats), size=2, replace=False)
            names = (cats[int(a)].name, cats[int(b)].name)
        jobs.append(Job("duet", i, names, out / "duets" / f"duet-{i:04d}.mp4"))
    return jobs


def check_numbers(solos, duets, same_kind, seconds, size, fps, sample_rate, distractors, jobs) -> tuple[int, int]:
    """Refuse numbers out of range (one-line :class:`ConfigError`); returns the frame size ``(width, height)``."""
    if solos < 0 or duets < 0:
        raise ConfigError("the numbers of solos and duets cannot be negative")
    if not 0.0 <= float(same_kind) <= 1.0:
        raise ConfigError(f"same_kind must be between 0 and 1, got {same_kind}")
    if not float(seconds) > 0 or float(seconds) > 3600:
        raise ConfigError(f"seconds must be between 0 and 3600, got {seconds}")
    try:
        width, height = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"size must be (width, height), got {size!r}") from None
    if width < 32 or height < 32 or width > 4096 or height > 4096:
        raise ConfigError(f"frame size must be between 32x32 and 4096x4096, got {width}x{height}")
    if not 1.0 <= float(fps) <= 120.0:
        raise ConfigError(f"fps must be between 1 and 120, got {fps}")
    if not 8000 <= int(sample_rate) <= 96000:
        raise ConfigError(f"sample rate must be between 8000 and 96000 Hz, got {sample_rate}")
    if distractors < 0 or distractors > 16:
        raise ConfigError(f"distractors must be between 0 and 16, got {distractors}")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    return width, height
