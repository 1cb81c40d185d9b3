"""The library API. Each CLI command is a thin layer over one function here.

Example::

    from avsplit import api
    api.synth("data/", solos=8, duets=2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def synth(out: str | Path, **options):
    """Generate the synthetic dataset into ``out``; see :func:`avsplit.synth.generate_dataset`."""
    from avsplit.synth import generate_dataset

    return generate_dataset(out, **options)


def print_models() -> None:
    """Print the registry of shipped weights as a table."""
    from avsplit.registry import print_registry

    print_registry()
