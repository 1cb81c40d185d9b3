"""Training: runs end to end on a tiny config, resumes exactly, runs under torchrun with 2 CPU processes."""

import csv
import dataclasses
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from avsplit.models.checkpoint import load_checkpoint
from avsplit.errors import AvsplitError
from avsplit.models import preset
from avsplit.training import TRAIN_PRESETS, TrainConfig, train

from conftest import write_test_video


@pytest.fixture(scope="module")
def tone_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    for i, f in enumerate([220, 330, 440, 550, 660, 880]):
        write_test_video(root / f"v{i}.mp4", seconds=2.5, fps=8, size=(80, 64), freq=f)
    return root


def _cfg(**kw):
    return TrainConfig(**{**TRAIN_PRESETS["tiny"].__dict__, **kw})


def test_train_writes_run_folder_and_never_overwrites(tone_videos, tmp_path):
    run = tmp_path / "run"
    summary = train(tone_videos, run, model_config=preset("tiny"), train_config=_cfg(steps=6, val_every=3, checkpoint_every=3),
                    cache_dir=tmp_path / "cache")
    assert summary.steps == 6
    for name in ("config.json", "log.csv", "last.safetensors", "best.safetensors", "state.safetensors"):
        assert (run / name).exists(), name
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta["training"]["step"] == 6 and model.config.preset == "tiny"
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert any(r["val_sdr"] for r in rows)
    with pytest.raises(AvsplitError, match="already holds a run"):
        train(tone_videos, run, model_config=preset("tiny"), train_config=_cfg(steps=6), cache_dir=tmp_path / "cache")
    assert (run / "last.safetensors").exists()


def test_resume_continues_exactly(tone_videos, tmp_path):
    cfg = _cfg(steps=8, val_every=4, checkpoint_every=4, log_every=1)
    torch.set_num_threads(1)
    try:
        full = train(tone_videos, tmp_path / "full", model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c")
        first = train(tone_videos, tmp_path / "split", model_config=preset("tiny"), train_config=cfg,
                      cache_dir=tmp_path / "c", stop_after=4)
        assert first.steps == 4
        second = train(tone_videos, tmp_path / "split", model_config=preset("tiny"), train_config=cfg,
                       cache_dir=tmp_path / "c", resume=True)
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    assert second.steps == 8
    np.testing.assert_allclose(first.losses + second.losses, full.losses, rtol=1e-5, atol=1e-6)
    a, _ = load_checkpoint(tmp_path / "full" / "last.safetensors")
    b, _ = load_checkpoint(tmp_path / "split" / "last.safetensors")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-5), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes(tone_videos, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "avsplit", "train", "--data", str(tone_videos), "-o", str(run),
           "--preset", "tiny", "--steps", "4", "--val-every", "2", "--cache", str(tmp_path / "cache"), "-d", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta["training"]["step"] == 4
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert rows and float(rows[-1]["clips_per_s"]) > 0


def test_resume_can_extend_a_finished_run(tone_videos, tmp_path):
    cfg = _cfg(steps=4, val_every=2, checkpoint_every=2)
    train(tone_videos, tmp_path / "r", model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c")
    more = train(tone_videos, tmp_path / "r", model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c",
                 resume=True, extend_to=6)
    assert more.steps == 6 and len(more.losses) == 2
    import json

    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["steps"] == 6


def test_frozen_parts_do_not_change(tone_videos, tmp_path):
    """--freeze frame: the frame net's weights and batch-norm statistics stay as they were, the rest trains."""
    from avsplit.models import build_model
    from avsplit.training import frozen_modules, make_optimizer

    start = build_model(preset("tiny"))
    init = tmp_path / "init.safetensors"
    from avsplit.models.checkpoint import save_checkpoint

    save_checkpoint(init, start, {})
    run = tmp_path / "run"
    train(tone_videos, run, model_config=preset("tiny"), train_config=_cfg(steps=4, val_every=2, freeze=("frame",)),
          cache_dir=tmp_path / "cache", init=init)
    after, _ = load_checkpoint(run / "last.safetensors")
    before = start.state_dict()
    for name, value in after.state_dict().items():
        if name.startswith("appearance."):
            torch.testing.assert_close(value, before[name], msg=name)
    assert any(not torch.equal(v, before[k]) for k, v in after.state_dict().items() if k.startswith("audio_net."))
    with pytest.raises(Exception, match="cannot freeze"):
        make_optimizer(start, _cfg(freeze=("wings",)))
    with pytest.raises(Exception, match="no motion_net"):
        frozen_modules(start, _cfg(freeze=("motion",)))


def test_refiner_trains_on_top_of_a_frozen_model(tone_videos, tmp_path):
    """--refiner with --freeze base: every weight of the initialising model (and its batch-norm
    statistics) stays as it was; only the refiner learns. Freezing everything is a clear error."""
    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model
    from avsplit.training import make_optimizer

    start = build_model(preset("tiny"))
    init = tmp_path / "init.safetensors"
    save_checkpoint(init, start, {})
    run = tmp_path / "run"
    train(tone_videos, run, model_config=preset("tiny", refiner=4), train_config=_cfg(steps=4, val_every=2, freeze=("base",)),
          cache_dir=tmp_path / "cache", init=init)
    after, _ = load_checkpoint(run / "last.safetensors")
    before = start.state_dict()
    for name, value in after.state_dict().items():
        if not name.startswith("refiner."):
            torch.testing.assert_close(value, before[name], msg=name)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in after.state_dict().items() if k.startswith("refiner.out."))
    with pytest.raises(Exception, match="nothing to train"):
        make_optimizer(start, _cfg(freeze=("base",)))


def test_resume_after_a_stop_has_no_duplicate_log_rows(tone_videos, tmp_path):
    """Stopped after step 3 (checkpoint at 2), resumed: step 3 is redone and logged once; the summary
    says how many steps this call trained."""
    cfg = _cfg(steps=6, val_every=100, checkpoint_every=2, log_every=1)
    run = tmp_path / "r"
    first = train(tone_videos, run, model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c", stop_after=3)
    assert first.steps == 3
    more = train(tone_videos, run, model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c", resume=True)
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "log.csv"))]
    assert steps == sorted(set(steps)) and steps[-1] == 6, steps
    assert more.steps == 6 and more.steps_run == 4


# ------------------------------------------------------------------ weak labels (--category-weight)


@pytest.fixture(scope="module")
def filed_videos(tmp_path_factory):
    """Six tone videos filed under two categories: DIR/low/*.mp4 and DIR/high/*.mp4."""
    root = tmp_path_factory.mktemp("filed")
    for i, f in enumerate([220, 250, 280, 700, 800, 900]):
        folder = root / ("low" if f < 500 else "high")
        folder.mkdir(exist_ok=True)
        write_test_video(folder / f"v{i}.mp4", seconds=2.5, fps=8, size=(80, 64), freq=f)
    return root


def test_category_labels_index_sorted_names_and_need_two():
    from avsplit.errors import ConfigError
    from avsplit.training.category import NO_CATEGORY, category_labels

    names, labels = category_labels(["violin", None, "flute", "violin"])
    assert names == ["flute", "violin"]
    assert labels.tolist() == [1, NO_CATEGORY, 0, 1]
    with pytest.raises(ConfigError, match="at least two categories"):
        category_labels(["violin", None, "violin"])


def _tiny_model_head_and_batch():
    """A seeded tiny model, a category head for three categories, and a batch of two 2-source examples
    (audio ``(2, 2, samples)``, frames ``(2, 2, F, 3, 64, 64)``)."""
    from avsplit.models import build_model
    from avsplit.training.category import CategoryHead

    torch.manual_seed(0)
    cfg = preset("tiny")
    model = build_model(cfg)
    head = CategoryHead(cfg.channels, ["a", "b", "c"])
    audio = torch.randn(2, 2, cfg.audio.clip_samples) * 0.1
    frames = torch.randn(2, 2, cfg.video.num_frames, 3, 64, 64)
    return model, head, audio, frames


def test_category_loss_adds_to_separation_and_reaches_the_frame_network():
    from avsplit.training.category import NO_CATEGORY
    from avsplit.training.loss import MixSeparateLoss

    model, head, audio, frames = _tiny_model_head_and_batch()
    labels = torch.tensor([[0, 2], [1, NO_CATEGORY]])
    plain = MixSeparateLoss(model)(audio, frames)
    weighted = MixSeparateLoss(model, head, category_weight=0.5)
    total = weighted(audio, frames, labels=labels)
    parts = weighted.parts
    assert parts["separation"] == pytest.approx(float(plain.detach()), rel=1e-5)
    assert float(total.detach()) == pytest.approx(parts["separation"] + 0.5 * parts["category"], rel=1e-5)
    assert parts["category"] > 0 and 0.0 <= parts["category_accuracy"] <= 1.0
    total.backward()
    assert head.linear.weight.grad.abs().sum() > 0
    assert model.appearance.head.weight.grad.abs().sum() > 0
    # an unlabelled batch adds nothing
    unlabelled = weighted(audio, frames, labels=torch.full((2, 2), NO_CATEGORY)).detach()
    assert float(unlabelled) == pytest.approx(float(plain.detach()), rel=1e-5)


def test_category_warmup_trains_only_the_head_for_its_first_steps(filed_videos, tmp_path, monkeypatch):
    """``head_only``: the category loss reaches the head, not the frame network (whose gradient is then
    the separation loss's alone); ``train --category-warmup N`` sets it for steps 0 to N - 1."""
    from avsplit.training.category import CategoryHead
    from avsplit.training.loss import MixSeparateLoss

    model, head, audio, frames = _tiny_model_head_and_batch()
    labels = torch.tensor([[0, 2], [1, 0]])
    MixSeparateLoss(model)(audio, frames).backward()
    separation_only = model.appearance.head.weight.grad.clone()
    model.zero_grad()
    weighted = MixSeparateLoss(model, head, category_weight=0.5)
    weighted(audio, frames, labels=labels).backward()
    assert not torch.allclose(model.appearance.head.weight.grad, separation_only)
    model.zero_grad()
    head.zero_grad()
    weighted.head_only = True
    weighted(audio, frames, labels=labels).backward()
    torch.testing.assert_close(model.appearance.head.weight.grad, separation_only)
    assert head.linear.weight.grad.abs().sum() > 0
    # in a run: the first N steps' pooled features reach the head detached, later ones attached
    seen = []
    original = CategoryHead.loss
    monkeypatch.setattr(CategoryHead, "loss", lambda self, pooled, lab: seen.append(pooled.requires_grad) or original(self, pooled, lab))
    train(filed_videos, tmp_path / "run", model_config=preset("tiny"), cache_dir=tmp_path / "c",
          train_config=_cfg(steps=5, val_every=5, checkpoint_every=5, category_weight=0.5, category_warmup=3))
    assert seen == [False, False, False, True, True]
    # meanwhile the head learns at WARMUP_HEAD_LR_FACTOR times its rate, the other groups at theirs
    from avsplit.training.loop import WARMUP_HEAD_LR_FACTOR
    from avsplit.training.optimizer import set_lr

    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.0, "name": n} for n in ("frame", "category")]
    optimizer = torch.optim.SGD(groups)
    set_lr(optimizer, [1.0, 2.0], 0.1, {"category": WARMUP_HEAD_LR_FACTOR})
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.2 * WARMUP_HEAD_LR_FACTOR])


def test_category_loss_on_the_vectors_of_a_motion_model_reaches_the_motion_pathway():
    from avsplit.errors import ConfigError
    from avsplit.models import build_model
    from avsplit.training.category import CategoryHead
    from avsplit.training.loss import MixSeparateLoss

    torch.manual_seed(0)
    cfg = preset("tiny-motion")
    model = build_model(cfg)
    torch.nn.init.normal_(model.fusion.project.weight, std=0.1)  # starts blind to motion: no gradient to pass on
    head = CategoryHead(cfg.channels, ["a", "b"])
    side = cfg.video.crop_size // cfg.motion.flow_scale
    audio = torch.randn(2, 2, cfg.audio.clip_samples) * 0.1
    frames = torch.randn(2, 2, cfg.frames_per_window, 3, cfg.video.crop_size, cfg.video.crop_size)
    flow = torch.randn(2, 2, cfg.frames_per_window - 1, 2, side, side)
    labels = torch.tensor([[0, 1], [1, 0]])
    on_vectors = MixSeparateLoss(model, head, category_weight=1.0, category_on="vectors")
    total = on_vectors(audio, frames, flow, labels=labels)
    assert float(total.detach()) == pytest.approx(on_vectors.parts["separation"] + on_vectors.parts["category"], rel=1e-5)
    # the head's cross-entropy alone: the step-averaged vectors, not the appearance features, are what it read
    with torch.no_grad():
        vectors = model.source_vectors(frames, flow).flatten(0, 1).mean(dim=1)
        expected, _ = head.loss(vectors, labels.flatten())
    assert on_vectors.parts["category"] == pytest.approx(float(expected), rel=1e-4)
    model.zero_grad()
    on_vectors(audio, frames, flow, labels=labels).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.motion_net.parameters())
    with pytest.raises(ConfigError, match="category-on"):
        MixSeparateLoss(model, head, category_weight=1.0, category_on="pixels")


def test_train_with_category_weight_logs_saves_its_head_and_resumes_exactly(filed_videos, tmp_path):
    from avsplit.models import build_model

    cfg = _cfg(steps=6, val_every=3, checkpoint_every=3, log_every=1, category_weight=0.5)
    torch.set_num_threads(1)
    try:
        full = train(filed_videos, tmp_path / "full", model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c")
        train(filed_videos, tmp_path / "split", model_config=preset("tiny"), train_config=cfg, cache_dir=tmp_path / "c",
              stop_after=3)
        second = train(filed_videos, tmp_path / "split", model_config=preset("tiny"), train_config=cfg,
                       cache_dir=tmp_path / "c", resume=True)
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    np.testing.assert_allclose(second.losses, full.losses[3:], rtol=1e-5, atol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "full" / "log.csv")))
    accuracy = [float(r["category_accuracy"]) for r in rows if r["category_accuracy"]]
    assert len(accuracy) == 6 and all(0.0 <= a <= 1.0 for a in accuracy)
    assert (tmp_path / "full" / "category_head.safetensors").exists()
    model, _ = load_checkpoint(tmp_path / "full" / "last.safetensors")  # the head stays out of the model
    assert set(model.state_dict()) == set(build_model(preset("tiny")).state_dict())


def test_own_weight_adds_the_loss_of_the_masks_before_the_refiner():
    """``own_weight``: the same loss on each source's own mask logits (before the refiner) is added;
    a model without a refiner has no own masks apart from its masks, and asking for them is an error."""
    import copy

    from avsplit.errors import ConfigError
    from avsplit.models import build_model
    from avsplit.training.loss import MixSeparateLoss

    torch.manual_seed(0)
    cfg = dataclasses.replace(preset("tiny"), refiner=4)
    model = build_model(cfg)
    audio = torch.randn(2, 2, cfg.audio.clip_samples) * 0.1
    frames = torch.randn(2, 2, cfg.video.num_frames, 3, 64, 64)
    with_own = MixSeparateLoss(model, own_weight=0.5)
    # a new refiner is the identity: the own masks are the refined masks
    total = with_own(audio, frames)
    assert with_own.parts["own"] == pytest.approx(with_own.parts["separation"], rel=1e-5)
    assert float(total.detach()) == pytest.approx(1.5 * with_own.parts["separation"], rel=1e-5)
    torch.nn.init.normal_(model.refiner.out.weight, std=0.5)
    total = with_own(audio, frames)
    assert abs(with_own.parts["own"] - with_own.parts["separation"]) > 1e-3
    assert float(total.detach()) == pytest.approx(with_own.parts["separation"] + 0.5 * with_own.parts["own"], rel=1e-5)
    # the own term is the loss of the same model with its refiner taken out
    unrefined = copy.deepcopy(model)
    unrefined.refiner = None
    assert float(MixSeparateLoss(unrefined)(audio, frames).detach()) == pytest.approx(with_own.parts["own"], rel=1e-5)
    assert float(MixSeparateLoss(model)(audio, frames).detach()) == pytest.approx(with_own.parts["separation"], rel=1e-5)
    # without a refiner there are no own masks apart from the masks: asking for them is an error
    with pytest.raises(ConfigError, match="own-weight"):
        MixSeparateLoss(unrefined, own_weight=0.5)


def test_own_weight_without_a_refiner_is_refused_before_any_data_is_read(tmp_path):
    from avsplit.errors import ConfigError

    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="own-weight") as caught:
        train(tmp_path / "no-videos-here", run, model_config=preset("tiny"), train_config=_cfg(own_weight=0.5))
    assert "--refiner" in str(caught.value) and not run.exists()
