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


def _degenerate_bss(monkeypatch, sources):
    """mir_eval returning non-finite scores for ``sources`` (as for degenerate signals; which signals
    do that depends on the CPU's rounding, so the scores are made non-finite here)."""
    import avsplit.evaluation.bss as metrics

    real = metrics._bss

    def bss(ref, est):
        sdr, sir, sar = real(ref, est)
        for k in sources:
            sir[k], sar[k] = np.nan, np.inf
        return sdr, sir, sar

    monkeypatch.setattr(metrics, "_bss", bss)


def test_non_finite_scores_are_reported_and_left_out(monkeypatch):
    from avsplit.evaluation.scores import EvalItem, score

    refs, rng = _signals(3)
    est = refs + 0.1 * rng.standard_normal(refs.shape)
    _degenerate_bss(monkeypatch, [1])
    scores = bss_eval(refs, est, refs.sum(0))
    assert scores.undefined == [1] and scores.sources == [0, 2]
    assert all(len(v) == 2 and np.isfinite(v).all() for v in (scores.sdr, scores.sir, scores.sar, scores.nsdr))
    assert np.isfinite(list(scores.mean().values())).all()
    item = EvalItem("mix", "a+b+c", [], [])
    score(item, refs, refs.sum(0), {"model": est})
    assert not item.skipped and item.undefined == {"model": [1]} and item.row()["undefined_sources"] == "model: 1"
    assert np.isfinite(list(item.scores["model"].values())).all()
    _degenerate_bss(monkeypatch, [0, 1, 2])
    none_left = EvalItem("mix", "a+b+c", [], [])
    score(none_left, refs, refs.sum(0), {"model": est})
    assert "undefined" in none_left.skipped and not none_left.scores


def test_json_text_writes_null_for_non_finite_numbers():
    import json

    from avsplit.files import json_text

    text = json_text({"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": "NaN"})
    assert json.loads(text, parse_constant=pytest.fail) == {"a": None, "b": [1.5, None, [None, 2]], "c": "NaN"}
