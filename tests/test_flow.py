"""Optical flow backends: DIS (OpenCV) and RAFT (torchvision, random weights from a local file; no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

from avsplit.dsp import flow as flowmod
from avsplit.errors import AvsplitError, CheckpointError, ConfigError
from avsplit.dsp.flow import BACKENDS, DISFlow, RAFTFlow, make_flow


def smooth_texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random noise (blurred), uint8 ``(h, w)``: textured everywhere, no aliasing at 2 px shifts."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), sigmaX=2.0)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return (blurred * 255).astype(np.uint8)


def translating_frames(t: int, h: int, w: int, dx: int, seed: int = 0, rgb: bool = True) -> np.ndarray:
    """``t`` frames of a texture moving ``dx`` pixels per frame to the right: ``(t, h, w, 3)`` uint8."""
    pad = dx * t + 8
    tex = smooth_texture(h, w + pad, seed)
    frames = np.stack([tex[:, pad - k * dx: pad - k * dx + w] for k in range(t)])
    return np.repeat(frames[..., None], 3, axis=-1) if rgb else frames


# --- DIS ----------------------------------------------------------------------------------------


def test_dis_sequence_translation():
    frames = translating_frames(5, 64, 80, dx=2)
    flows = DISFlow("medium").sequence(frames)
    assert flows.shape == (4, 64, 80, 2) and flows.dtype == np.float32
    interior = flows[:, 12:-12, 12:-12]
    med = np.median(interior.reshape(-1, 2), axis=0)
    assert abs(med[0] - 2.0) < 0.5 and abs(med[1]) < 0.5, med


def test_dis_sequence_matches_pairwise_and_grey_input():
    frames = translating_frames(4, 48, 56, dx=2, rgb=False)
    dis = DISFlow("fast")
    seq = dis.sequence(frames)
    assert seq.shape == (3, 48, 56, 2)
    np.testing.assert_allclose(seq[1], DISFlow("fast")(frames[1], frames[2]), atol=1e-5)


def test_dis_sequence_static_scene():
    tex = smooth_texture(48, 64, seed=3)
    frames = np.repeat(np.stack([tex] * 3)[..., None], 3, axis=-1)
    flows = DISFlow().sequence(frames)
    assert flows.shape == (2, 48, 64, 2)
    assert np.abs(np.median(flows.reshape(-1, 2), axis=0)).max() < 0.1


def test_dis_sequence_repeats_memo_and_threads_change_nothing(monkeypatch):
    """Repeated frames give exactly zero flow, and the memo of recent pairs and the worker threads
    give exactly what one DIS instance computing every pair in turn gives."""
    frames = translating_frames(9, 48, 56, dx=2)
    frames = np.concatenate([frames[:4], frames[3:4], frames[3:4], frames[4:]])  # frame 3 shown three times
    reference = DISFlow("fast")
    expected = np.stack([reference(frames[i], frames[i + 1]) for i in range(len(frames) - 1)])
    assert np.abs(expected[3:5]).max() == 0.0  # what DIS itself gives for a repeated picture
    for threads in (1, 3):
        monkeypatch.setattr(flowmod, "DIS_THREADS", threads)
        dis = DISFlow("fast")
        first = dis.sequence(frames)
        np.testing.assert_array_equal(first, expected)
        assert len(dis._memo) == len(frames) - 3  # the two repeats are not computed
        again = dis.sequence(frames[2:])  # an overlapping window: every pair from the memo
        np.testing.assert_array_equal(again, expected[2:])
        again[0] += 1.0  # what the caller does with its result does not reach the memo
        np.testing.assert_array_equal(dis.sequence(frames[2:4]), expected[2:3])


def test_dis_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(flowmod, "DIS_MEMO_PAIRS", 3)
    dis = DISFlow("ultrafast")
    dis.sequence(translating_frames(8, 32, 40, dx=1))
    assert len(dis._memo) == 3


@pytest.mark.parametrize("t", [0, 1])
def test_dis_sequence_short(t):
    flows = DISFlow().sequence(np.zeros((t, 20, 30, 3), np.uint8))
    assert flows.shape == (0, 20, 30, 2) and flows.dtype == np.float32


def test_dis_sequence_rejects_bad_frames():
    with pytest.raises(ValueError):
        DISFlow().sequence(np.zeros((3, 20, 30, 4), np.uint8))
    with pytest.raises(ValueError):
        DISFlow().sequence(np.zeros((3, 20, 30, 3), np.float32))


# --- make_flow ----------------------------------------------------------------------------------


def test_backends_and_unknown_backend():
    assert BACKENDS == ("dis", "raft")
    assert isinstance(make_flow("dis", preset="fast"), DISFlow)
    with pytest.raises(ConfigError) as err:
        make_flow("farneback")
    msg = str(err.value)
    assert "\n" not in msg and "dis" in msg and "raft" in msg


# --- RAFT (random weights, CPU) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def raft_weights(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    net = raft_small(weights=None, progress=False)
    path = tmp_path_factory.mktemp("raft") / "raft_small.pth"
    torch.save(net.state_dict(), path)
    return path


def test_raft_sequence_shape_from_local_weights(raft_weights):
    raft = make_flow("raft", weights=raft_weights, device="cpu", num_flow_updates=2)
    assert isinstance(raft, RAFTFlow)
    frames = translating_frames(4, 36, 44, dx=2)  # sides not multiples of 8
    flows = raft.sequence(frames)
    assert flows.shape == (3, 36, 44, 2) and flows.dtype == np.float32
    assert np.isfinite(flows).all()
    single = raft(frames[0], frames[1])
    assert single.shape == (36, 44, 2) and np.isfinite(single).all()
    np.testing.assert_allclose(single, flows[0], atol=1e-3)
    assert raft.sequence(frames[:1]).shape == (0, 36, 44, 2)


def test_raft_sequence_batches_and_grey(raft_weights):
    raft = RAFTFlow(weights=str(raft_weights), device="cpu", num_flow_updates=1, batch_size=2)
    frames = translating_frames(4, 24, 32, dx=1, rgb=False)
    flows = raft.sequence(frames)  # 3 pairs in chunks of 2
    assert flows.shape == (3, 24, 32, 2) and np.isfinite(flows).all()
    whole = RAFTFlow(weights=raft_weights, device="cpu", num_flow_updates=1, batch_size=16).sequence(frames)
    np.testing.assert_allclose(flows, whole, atol=1e-3)


def test_raft_safetensors_weights(tmp_path, raft_weights):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    state = torch.load(raft_weights, weights_only=True)
    path = tmp_path / "raft.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    raft = RAFTFlow(weights=path, device="cpu", num_flow_updates=1)
    assert raft.sequence(translating_frames(2, 16, 16, dx=1)).shape == (1, 16, 16, 2)


def test_raft_missing_weights(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError) as err:
        RAFTFlow(weights=path, device="cpu")
    msg = str(err.value)
    assert "nope.pth" in msg and "\n" not in msg and "not found" in msg


def test_raft_corrupt_weights(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(CheckpointError) as err:
        RAFTFlow(weights=path, device="cpu")
    msg = str(err.value)
    assert "corrupt.pth" in msg and "\n" not in msg
    bad_st = tmp_path / "corrupt.safetensors"
    bad_st.write_bytes(b"\x00" * 7)
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        RAFTFlow(weights=bad_st, device="cpu")


def test_raft_mismatched_weights(tmp_path, raft_weights):
    torch = pytest.importorskip("torch")
    # small weights given to the large model
    with pytest.raises(CheckpointError) as err:
        RAFTFlow(model="large", weights=raft_weights, device="cpu")
    msg = str(err.value)
    assert "raft_small.pth" in msg and "\n" not in msg and "large" in msg
    # a state dict of something else entirely
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(CheckpointError, match="other.pth"):
        RAFTFlow(weights=other, device="cpu")
    # not a state dict at all
    notdict = tmp_path / "list.pth"
    torch.save([1, 2, 3], notdict)
    with pytest.raises(CheckpointError, match="list.pth"):
        RAFTFlow(weights=notdict, device="cpu")


def test_raft_bad_options(raft_weights):
    for kwargs in ({"model": "huge"}, {"num_flow_updates": 0}, {"device": "nonsense"}, {"weights": None}):
        with pytest.raises(AvsplitError) as err:
            RAFTFlow(**{"weights": raft_weights, "device": "cpu", **kwargs})
        assert "\n" not in str(err.value)


def test_raft_default_weights_not_downloaded_in_tests(monkeypatch):
    """``weights="default"`` goes through torchvision's enum; a failure becomes a ConfigError (no network here)."""
    from torchvision.models import optical_flow as tv_flow

    seen = {}

    def fake_small(*, weights=None, progress=True, **kw):
        seen["weights"] = weights
        raise OSError("no network")

    monkeypatch.setattr(tv_flow, "raft_small", fake_small)
    with pytest.raises(ConfigError) as err:
        RAFTFlow(device="cpu")
    assert seen["weights"] is tv_flow.Raft_Small_Weights.DEFAULT
    assert "weights=PATH" in str(err.value) and "\n" not in str(err.value)


def test_iter_flow_signature_keeps_preset():
    import inspect

    params = inspect.signature(flowmod.iter_flow).parameters
    assert params["backend"].default == "dis" and params["preset"].default == "medium"
