import numpy as np
import pytest

from avsplit.dsp.chunking import OverlapAdd, plan_windows


def _run(signal, window, overlap, process):
    total = signal.shape[-1]

    def read(win):
        chunk = signal[..., win.start : win.start + window]
        return np.pad(chunk, [(0, 0)] * (chunk.ndim - 1) + [(0, window - chunk.shape[-1])])

    windows = plan_windows(total, window, overlap)
    joiner = OverlapAdd(total, window, windows)
    pieces = [joiner.add(win, process(win, read(win))) for win in windows] + [joiner.finish()]
    pieces = [p for p in pieces if p.shape[1]]
    return np.concatenate(pieces, axis=-1), pieces


@pytest.mark.parametrize("total", [1, 999, 1000, 1001, 4321, 10000])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_identity_model_reconstructs_input_exactly(total, overlap):
    rng = np.random.default_rng(total)
    signal = rng.standard_normal((2, total)).astype(np.float32)
    out, _ = _run(signal, 1000, overlap, lambda win, x: x)
    assert out.shape == signal.shape
    np.testing.assert_allclose(out, signal, rtol=0, atol=1e-6)


def test_windows_cover_signal_and_last_ends_at_end():
    wins = plan_windows(4321, 1000, 0.25)
    assert wins[0].start == 0
    assert wins[-1].start + wins[-1].length == 4321
    assert all(b.start - a.start <= 750 for a, b in zip(wins, wins[1:]))


def test_crossfade_blends_neighbouring_outputs():
    # Each window outputs a constant equal to its index: the join ramps smoothly between them.
    signal = np.zeros((1, 2500), np.float32)
    out, _ = _run(signal, 1000, 0.5, lambda win, x: np.full((1, 1000), float(win.index)))
    assert out[0, 0] == 0.0 and out[0, -1] == float(len(plan_windows(2500, 1000, 0.5)) - 1)
    assert np.all(np.diff(out[0]) >= -1e-9)  # monotonic: no jumps backwards
    assert np.max(np.diff(out[0])) < 0.01  # no hard step


def test_memory_is_bounded_by_the_window():
    total, window = 200_000, 1000
    signal = np.ones((1, total), np.float32)
    _, pieces = _run(signal, window, 0.25, lambda win, x: x)
    assert max(p.shape[-1] for p in pieces) <= window
    assert sum(p.shape[-1] for p in pieces) == total


def test_windows_must_come_in_order():
    wins = plan_windows(3000, 1000, 0.25)
    joiner = OverlapAdd(3000, 1000, wins)
    with pytest.raises(ValueError):
        joiner.add(wins[1], np.zeros((1, 1000)))
