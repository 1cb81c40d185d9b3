"""Separation metrics: BSS Eval v3 through mir_eval, exactly as the Sound of Pixels protocol.

``bss_eval`` calls ``mir_eval.separation.bss_eval_sources(reference, estimate,
compute_permutation=False)``; NSDR is the SDR gain over using the unseparated mixture as every
source's estimate. Silent references make BSS Eval undefined: they are detected, reported and
skipped, never averaged in as NaN; so are sources whose scores still come out non-finite (NaN or
infinite: a degenerate reference or estimate).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

#: A reference whose energy per sample is below this is silent (about -80 dBFS RMS).
SILENCE_ENERGY = 1e-8


@dataclass
class SeparationScores:
    """Per-source scores of one mixture. ``silent`` lists source indices skipped as silent."""

    sdr: list[float] = field(default_factory=list)
    sir: list[float] = field(default_factory=list)
    sar: list[float] = field(default_factory=list)
    nsdr: list[float] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    silent: list[int] = field(default_factory=list)
    undefined: list[int] = field(default_factory=list)
    """Sounding sources whose scores are not finite numbers: reported and left out, as silent ones."""

    @property
    def valid(self) -> bool:
        return bool(self.sources)

    def mean(self) -> dict[str, float]:
        return {k: float(np.mean(getattr(self, k))) for k in ("sdr", "sir", "sar", "nsdr")} if self.valid else {}


def silent_sources(reference: np.ndarray) -> list[int]:
    """Indices of references ``(sources, samples)`` that are silent."""
    energy = np.mean(np.asarray(reference, dtype=np.float64) ** 2, axis=-1)
    return [int(i) for i in np.flatnonzero(energy < SILENCE_ENERGY)]


def _bss(reference: np.ndarray, estimate: np.ndarray):
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(reference, estimate, compute_permutation=False)
    return sdr, sir, sar


def bss_eval(reference: np.ndarray, estimate: np.ndarray, mixture: np.ndarray | None = None) -> SeparationScores:
    """BSS Eval v3 of ``estimate`` against ``reference``, both ``(sources, samples)``.

    Sources with silent references are skipped (listed in ``silent``); with fewer than two sounding
    sources left, SIR is undefined and the mixture is skipped entirely. ``mixture`` ``(samples,)``
    enables NSDR. A silent estimate of a sounding source is a real failure and scores as such
    (mir_eval is given a tiny noise floor to keep its projections defined).
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim != 2:
        raise ValueError(f"reference {reference.shape} and estimate {estimate.shape} must both be (sources, samples)")
    silent = silent_sources(reference)
    keep = [i for i in range(reference.shape[0]) if i not in silent]
    scores = SeparationScores(silent=silent)
    if len(keep) < 2:
        return scores
    ref, est = reference[keep], estimate[keep].copy()
    dead = np.mean(est**2, axis=-1) < SILENCE_ENERGY * 1e-4
    if dead.any():
        rng = np.random.default_rng(0)
        est[dead] = rng.standard_normal((int(dead.sum()), est.shape[1])) * 1e-6
    sdr, sir, sar = _bss(ref, est)
    table = [sdr, sir, sar]
    if mixture is not None:
        mix = np.broadcast_to(np.asarray(mixture, dtype=np.float64), ref.shape)
        sdr_mix, _, _ = _bss(ref, mix.copy())
        table.append(sdr - sdr_mix)
    table = np.asarray(table, dtype=np.float64)  # (metrics, sounding sources)
    defined = np.isfinite(table).all(axis=0)
    scores.undefined = [keep[j] for j in np.flatnonzero(~defined)]
    scores.sources = [keep[j] for j in np.flatnonzero(defined)]
    if not scores.sources:
        return scores
    rows = [table[m][defined].tolist() for m in range(table.shape[0])]
    scores.sdr, scores.sir, scores.sar = rows[:3]
    if mixture is not None:
        scores.nsdr = rows[3]
    return scores
