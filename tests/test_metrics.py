import mir_eval
import numpy as np
import pytest

from avsplit.evaluation.bss import bss_eval, silent_sources


def _signals(n=2, length=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 8000
    refs = np.stack([np.sin(2 * np.pi * (200 + 150 * i) * t) * (1 + 0.3 * rng.standard_normal(length)) for i in range(n)])
    return refs, rng


def test_matches_mir_eval_exactly():
    refs, rng = _signals()
    est = refs + 0.2 * rng.standard_normal(refs.shape)
    ours = bss_eval(refs, est)
    sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs, est, compute_permutation=False)
    assert ours.sdr == pytest.approx(sdr.tolist())
    assert ours.sir == pytest.approx(sir.tolist())
    assert ours.sar == pytest.approx(sar.tolist())


def test_better_estimates_score_higher_and_nsdr_is_gain_over_mixture():
    refs, rng = _signals()
    mix = refs.sum(0)
    good = bss_eval(refs, refs + 0.01 * rng.standard_normal(refs.shape), mix)
    bad = bss_eval(refs, refs + 0.5 * rng.standard_normal(refs.shape), mix)
    assert min(good.sdr) > max(bad.sdr)
    unseparated = bss_eval(refs, np.stack([mix, mix]), mix)
    assert unseparated.nsdr == pytest.approx([0.0, 0.0], abs=1e-6)
    assert min(good.nsdr) > 10


def test_silent_reference_is_reported_and_skipped_not_nan():
    refs, rng = _signals(3)
    refs[1] = 0.0
    assert silent_sources(refs) == [1]
    scores = bss_eval(refs, refs + 0.1 * rng.standard_normal(refs.shape))
    assert scores.silent == [1] and scores.sources == [0, 2]
    assert np.all(np.isfinite(scores.sdr))
    refs[2] = 0.0
    only_one = bss_eval(refs, refs)
    assert not only_one.valid and only_one.mean() == {}


def test_silent_estimate_scores_badly_not_nan():
    refs, _ = _signals()
    est = refs.copy()
    est[0] = 0
    scores = bss_eval(refs, est)
    assert np.isfinite(scores.sdr).all() and scores.sdr[0] < 0
