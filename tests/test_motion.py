"""The motion pathway (Sound of Motions): trajectories, the flow cache, the sampler's flow, both
fusion heads, and train -> separate -> evaluate -> localize with a tiny motion model."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.data.cache import PreprocessCache
from avsplit.data.mixing import NO_AUGMENT, MixSampler
from avsplit.data.motion import FlowExtra, cache_extras, crop_flip_flow, window_flow
from avsplit.models.inputs import compute_flow, reduce_flow
from avsplit.scan import scan_videos
from avsplit.config import PreprocessSettings
from avsplit.models import build_model, preset
from avsplit.dsp.trajectories import dense_trajectories, trajectory_field
from avsplit.training import MixSeparateLoss, init_from_checkpoint

runner = CliRunner()


# ------------------------------------------------------------------ trajectories


def test_translating_object_gives_straight_trajectories_of_its_speed():
    """A square moving 2 px right and 1 px down per step: trajectories that start on it follow it
    (the flow is looked up where the point has moved to), the background stays put."""
    steps, h, w = 6, 40, 48
    flow = torch.zeros(1, steps, 2, h, w)
    for t in range(steps):
        y0, x0 = 5 + t, 4 + 2 * t
        flow[0, t, 0, y0 : y0 + 8, x0 : x0 + 8] = 2.0
        flow[0, t, 1, y0 : y0 + 8, x0 : x0 + 8] = 1.0
    positions, velocities = dense_trajectories(flow)
    assert positions.shape == (1, steps + 1, 2, h, w) and velocities.shape == (1, steps, 2, h, w)
    disp = positions[0, :, :, 8, 7] - positions[0, 0, :, 8, 7]  # starts inside the square
    expected = torch.stack([2.0 * torch.arange(steps + 1), 1.0 * torch.arange(steps + 1)], dim=1)
    torch.testing.assert_close(disp, expected)
    assert torch.all(positions[0, :, :, 30, 40] == positions[0, 0, :, 30, 40])  # background


def test_sub_pixel_translation_slope_and_static_scene():
    flow = torch.zeros(2, 5, 2, 16, 20)
    flow[0, :, 0] = 0.75
    flow[0, :, 1] = -0.25
    positions, velocities = dense_trajectories(flow)
    slope = (positions[0, -1] - positions[0, 0]) / 5
    torch.testing.assert_close(slope[0], torch.full((16, 20), 0.75))
    torch.testing.assert_close(slope[1], torch.full((16, 20), -0.25))
    assert torch.count_nonzero(positions[1] - positions[1, :1]) == 0 and torch.count_nonzero(velocities[1]) == 0
    field = trajectory_field(flow, displacement_scale=1.0)
    assert field.shape == (2, 4, 5, 16, 20)
    torch.testing.assert_close(field[0, 2, -1], torch.full((16, 20), 5 * 0.75))  # displacement x at the end
    assert torch.count_nonzero(field[1]) == 0


# ------------------------------------------------------------------ models


@pytest.mark.parametrize("fusion", ["synthesizer", "film"])
def test_motion_model_shapes_and_gradients(fusion):
    cfg = preset("tiny-motion")
    cfg = cfg.replace(motion=dataclasses.replace(cfg.motion, fusion=fusion))
    torch.manual_seed(0)
    model = build_model(cfg)
    steps = cfg.frames_per_window - 1
    audio = torch.randn(2, 2, cfg.audio.clip_samples) * 0.1
    frames = torch.randn(2, 2, cfg.video.num_frames, 3, 64, 64)
    flow = torch.randn(2, 2, steps, 2, 32, 32)
    est = model(audio.sum(1), frames, flow)
    assert est.shape == (2, 2, cfg.audio.clip_samples)
    raw = model.visual_features(frames[:, 0], flow[:, 0])
    assert raw.shape[:3] == (2, steps, cfg.channels)  # per step and per pixel
    loss = MixSeparateLoss(model)(audio, frames, flow)
    loss.backward()
    first = model.fusion.project if fusion == "synthesizer" else model.film.layers[0]  # starts as the identity
    assert first.weight.grad.abs().sum() > 0
    assert model.has_pixel_masks == (fusion == "synthesizer")
    with pytest.raises(ValueError, match="optical flow"):
        model.visual_features(frames[:, 0])


def test_motion_model_starts_as_the_appearance_model(tiny_weights):
    """--init from an appearance checkpoint: the fusion starts as 'appearance only', so the motion
    model separates exactly as the appearance model did until it learns to use motion."""
    from avsplit.models.checkpoint import load_checkpoint

    appearance, _ = load_checkpoint(tiny_weights)
    motion = build_model(preset("tiny-motion")).eval()
    assert init_from_checkpoint(motion, tiny_weights) == len(appearance.state_dict())
    cfg = motion.config
    torch.manual_seed(1)
    mix = torch.randn(1, cfg.audio.clip_samples) * 0.1
    frames = torch.randn(1, 2, 1, 3, 64, 64)
    flow = torch.randn(1, 2, cfg.frames_per_window - 1, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(motion(mix, frames, flow), appearance(mix, frames))


def test_temporal_context_starts_as_identity_and_lets_a_step_see_its_neighbours():
    """The temporal context is a residual convolution over steps, zero at first: a model with it
    gives exactly the vectors of the same model without it; once trained, the vector of one step
    depends on the motion of other steps (and pixel-wise vectors follow the same rule as pooled ones)."""
    from avsplit.models.fusion import TemporalContext

    base_cfg = preset("tiny-motion")
    cfg = base_cfg.replace(motion=dataclasses.replace(base_cfg.motion, temporal_kernel=5))
    torch.manual_seed(0)
    with_ctx, without = build_model(cfg).eval(), build_model(base_cfg).eval()
    assert init_from_checkpoint_state(without, with_ctx) > 0
    steps = cfg.frames_per_window - 1
    frames = torch.randn(1, cfg.video.num_frames, 3, 64, 64)
    flow = torch.randn(1, steps, 2, 32, 32)
    with torch.no_grad():
        raw = with_ctx.visual_features(frames, flow)  # (1, steps, K, h, w)
        torch.testing.assert_close(with_ctx.pool(raw), without.pool(raw))
        ctx = TemporalContext(4, 5)
        torch.nn.init.normal_(ctx.conv.weight)
        x = torch.zeros(1, 9, 4)
        x[0, 4] = 1.0  # one step stands out
        y = ctx(x)
        assert y.shape == x.shape and (y[0, 2] != 0).any() and (y[0, 6] != 0).any() and not y[0, 0].any()
        torch.nn.init.normal_(with_ctx.temporal.conv.weight, std=0.3)
        pixel = with_ctx.activate_pixels(raw)  # (1, steps, K, h, w)
        one = raw[..., :1, :1]  # a region made of the top-left pixel alone
        torch.testing.assert_close(pixel[..., 0, 0], with_ctx.pool(one))
    with pytest.raises(Exception, match="odd"):
        dataclasses.replace(base_cfg.motion, temporal_kernel=4)


def init_from_checkpoint_state(src, dst) -> int:
    """Copy ``src``'s weights into ``dst`` where names match (the in-memory form of ``--init``)."""
    own = dst.state_dict()
    matched = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
    dst.load_state_dict(matched, strict=False)
    return len(matched)


# ------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def motion_set(tmp_path_factory):
    from avsplit.synth import generate_dataset

    root = tmp_path_factory.mktemp("motion")
    generate_dataset(root / "data", solos=6, duets=2, same_kind=1.0, seconds=2.5, size=(96, 72), fps=8, seed=7)
    return root


def test_flow_cache_sampler_and_inference_agree(motion_set):
    cfg = preset("tiny-motion")
    items = scan_videos(motion_set / "data" / "solos")
    report = PreprocessCache(motion_set / "cache", PreprocessSettings(cfg.audio, cfg.video), extras=cache_extras(cfg)).build(items)
    videos = list(report.ready)
    assert len(videos) == len(items)
    v = videos[0]
    flow = v.array("flow")
    (t, fh, fw, two) = flow.shape
    assert flow.dtype == np.float16 and t == v.num_frames - 1 and two == 2
    assert (fh, fw) == (v.frames.shape[1] // 2, v.frames.shape[2] // 2)
    # separation computes flow from decoded frames the same way the cache does
    live = compute_flow(np.asarray(v.frames[:4]), cfg.motion)
    np.testing.assert_allclose(live, np.asarray(flow[:3], np.float32), atol=2e-2)
    # the sampler cuts the cached flow for the window's frames, and crops it like the frames
    sampler = MixSampler(videos, cfg, seed=3, augment=NO_AUGMENT)
    batch = sampler.batch([0, 1])
    frames, wflow = batch.frames, batch.flow
    assert batch.regions is None
    steps = cfg.frames_per_window - 1
    crop = cfg.video.crop_size
    assert wflow.shape == (2, 2, steps, crop // 2, crop // 2, 2) and frames.shape[2] == cfg.video.num_frames
    ex = sampler.example(0)
    video = videos[ex.videos[0]]
    rate = cfg.audio.sample_rate
    dense = video.frames_in(ex.starts[0] / rate, (ex.starts[0] + cfg.audio.clip_samples) / rate, cfg.frames_per_window)
    full = window_flow(video.array("flow"), dense)
    h, w = video.frames.shape[1:3]
    y, x = (max(h, crop) - crop) // 2 // 2 * 2, (max(w, crop) - crop) // 2 // 2 * 2
    if h >= crop and w >= crop:
        np.testing.assert_allclose(ex.flow[0].astype(np.float32), crop_flip_flow(full, y, x, crop, False, 2), atol=1e-2)


def _tiny_motion_videos(motion_set):
    """The tiny-motion preset and the motion set's solos, cached with their flow."""
    cfg = preset("tiny-motion")
    items = scan_videos(motion_set / "data" / "solos")
    return cfg, list(PreprocessCache(motion_set / "cache", PreprocessSettings(cfg.audio, cfg.video),
                                     extras=cache_extras(cfg)).build(items).ready)


def test_composite_examples_show_both_sources_side_by_side(motion_set):
    cfg, videos = _tiny_motion_videos(motion_set)
    plain = dataclasses.replace(NO_AUGMENT, composite=1.0)  # centred crops, so the halves can be checked
    sampler = MixSampler(videos, cfg, seed=4, augment=plain)
    crop, half, rate = cfg.video.crop_size, cfg.video.crop_size // 2, cfg.audio.sample_rate
    lefts = set()
    for index in range(10):
        ex = sampler.example(index)
        assert ex.frames.shape == (2, cfg.video.num_frames, crop, crop, 3) and ex.regions.shape == (2, crop, crop)
        np.testing.assert_array_equal(ex.frames[0], ex.frames[1])  # one picture, shown for both sources
        np.testing.assert_array_equal(ex.flow[0], ex.flow[1])
        assert ex.flow.shape[2:4] == (crop // 2, crop // 2)
        assert (ex.regions[0] ^ ex.regions[1]).all() and ex.regions[0].sum() == crop * half  # complementary halves
        for s in range(2):  # each half is the centre of its own source's frames
            video = videos[ex.videos[s]]
            dense = video.frames_in(ex.starts[s] / rate, (ex.starts[s] + cfg.audio.clip_samples) / rate, cfg.frames_per_window)
            own = np.asarray(video.frames[dense[cfg.appearance_frame_indices()]])
            h, w = own.shape[1:3]
            assert h >= crop and w >= crop
            y, x = (h - crop) // 2 // 2 * 2, (w - half) // 2 // 2 * 2
            cols = np.flatnonzero(ex.regions[s][0])
            np.testing.assert_array_equal(ex.frames[s][:, :, cols], own[:, y : y + crop, x : x + half])
        lefts.add(int(ex.regions[0][0, 0]))
    assert lefts == {0, 1}  # the first source is drawn on either side
    batch = MixSampler(videos, cfg, seed=4, augment=dataclasses.replace(plain, composite=0.5)).batch(range(6))
    assert batch.regions.shape == (6, 2, crop, crop)
    whole = batch.regions.all(axis=(1, 2, 3))
    assert whole.any() and not whole.all()  # plain examples pool whole pictures; composites their halves


def test_inset_composites_show_one_source_inside_the_others_picture(motion_set):
    cfg, videos = _tiny_motion_videos(motion_set)
    augment = dataclasses.replace(NO_AUGMENT, composite=1.0, inset=0.5)
    crop, scale = cfg.video.crop_size, cfg.motion.flow_scale
    kinds = set()
    for index in range(12):
        ex = MixSampler(videos, cfg, seed=4, augment=augment).example(index)
        assert ex.frames.shape == (2, cfg.video.num_frames, crop, crop, 3) and ex.flow.shape[2:4] == (crop // scale,) * 2
        np.testing.assert_array_equal(ex.frames[0], ex.frames[1])
        assert (ex.regions[0] ^ ex.regions[1]).all()
        sizes = sorted(int(r.sum()) for r in ex.regions)
        kinds.add("halves" if sizes[0] == sizes[1] else "inset")
        if sizes[0] != sizes[1]:
            inset = int(ex.regions[1].sum() < ex.regions[0].sum())
            rows, cols = np.nonzero(ex.regions[inset])
            assert ex.regions[inset].sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # a rectangle: the inset clip
    assert kinds == {"halves", "inset"}  # --inset 0.5: some composites side by side, some inset
    plain = MixSampler(videos, cfg, seed=4, augment=dataclasses.replace(NO_AUGMENT, composite=1.0))
    same = MixSampler(videos, cfg, seed=4, augment=dataclasses.replace(NO_AUGMENT, composite=1.0, inset=0.0))
    np.testing.assert_array_equal(plain.example(3).frames, same.example(3).frames)  # inset 0 draws nothing


def test_pooling_over_regions_sees_only_their_cells():
    from avsplit.models.separator import region_cells

    halves = torch.zeros(2, 112, 112, dtype=torch.bool)
    halves[0, :, :56], halves[1, :, 56:] = True, True
    cells = region_cells(halves, (7, 7))
    assert cells[0, :, :4].all() and not cells[0, :, 4:].any()  # the middle column is half in each
    assert cells[1, :, 3:].all() and not cells[1, :, :3].any()
    tiny = torch.zeros(1, 112, 112, dtype=torch.bool)
    tiny[0, 0:4, 0:4] = True  # covers no cell by half: its best-covered cell is kept
    assert region_cells(tiny, (7, 7))[0].sum() == 1 and region_cells(tiny, (7, 7))[0, 0, 0]
    torch.manual_seed(0)
    model = build_model(preset("tiny-motion")).eval()
    features = torch.randn(2, 3, model.config.channels, 7, 7)  # (n, steps, K, h, w)
    features[:, :, :, :, 5:] += 10.0  # the right columns dominate a whole-picture max
    with torch.no_grad():
        left = model.pool(features, cells[:1].expand(2, -1, -1).clone())
        expected = model.pool(features[..., :4])
        whole = model.pool(features)
    torch.testing.assert_close(left, expected)
    assert not torch.allclose(left, whole)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_reduce_flow_is_an_area_average_of_displacements_over_scale(scale):
    rng = np.random.default_rng(0)
    flow = rng.standard_normal((3, 13, 17, 2)).astype(np.float32)
    got = reduce_flow(flow, scale)
    h, w = 13 // scale, 17 // scale
    expected = np.zeros((3, h, w, 2))
    for y in range(h):
        for x in range(w):
            expected[:, y, x] = flow[:, y * scale : (y + 1) * scale, x * scale : (x + 1) * scale].mean(axis=(1, 2)) / scale
    assert got.shape == (3, h, w, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_window_flow_and_flip():
    flow = np.random.default_rng(0).normal(size=(5, 4, 6, 2)).astype(np.float16)
    out = window_flow(flow, np.array([1, 2, 2, 4]))
    np.testing.assert_allclose(out[0], flow[1].astype(np.float32))
    assert not out[1].any()  # a repeated frame does not move
    np.testing.assert_allclose(out[2], flow[2].astype(np.float32) + flow[3].astype(np.float32), rtol=1e-3)
    flipped = crop_flip_flow(flow.astype(np.float32), 0, 0, 8, True, 2)
    np.testing.assert_allclose(flipped[..., 0], -flow[:, :4, 3::-1, 0].astype(np.float32))
    np.testing.assert_allclose(flipped[..., 1], flow[:, :4, 3::-1, 1].astype(np.float32))
    assert FlowExtra(preset("tiny-motion").motion).name.startswith("flow_dis")


# ------------------------------------------------------------------ end to end


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_separate_evaluate_localize_with_a_motion_model(motion_set, tmp_path):
    run = tmp_path / "run"
    r = _invoke("train", "--data", motion_set / "data" / "solos", "-o", run, "--preset", "tiny-motion", "--steps", "10",
                "--val-every", "2", "--curriculum", "--picture-variety", "--composite", "0.5", "--inset", "0.5", "--gain-db", "9", "--silent", "0.3",
                "--refiner", "4", "--own-weight", "0.5", "--cache", motion_set / "cache", "-q")
    assert r.exit_code == 0, r.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["picture_variety"] is True and saved["composite"] == 0.5 and saved["inset"] == 0.5 and saved["gain_db"] == 9
    assert saved["silent"] == 0.3 and saved["own_weight"] == 0.5
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert {row["stage"] for row in rows if row["stage"]} >= {"easy", "three"}  # stages logged, 2 -> 3 sources
    weights = run / "last.safetensors"
    duet = sorted((motion_set / "data" / "duets").glob("*.mp4"))[0]
    r = _invoke("separate", duet, "-o", tmp_path / "sep", "-w", weights, "--sources", "2", "-q")
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "sep" / duet.stem / "sources.json").read_text())
    assert len(meta["sources"]) == 2
    r = _invoke("separate", duet, "-o", tmp_path / "sep2", "-w", weights, "--flow-backend", "raft", "-q")
    assert r.exit_code != 0 and "trained on 'dis' optical flow" in r.output and "--flow-backend dis" in r.output
    r = _invoke("evaluate", "--data", motion_set / "data", "-w", weights, "--pairs", "2", "--json", tmp_path / "e.json", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert "mix" in summary and any(k.startswith("wild") for k in summary)
    r = _invoke("localize", duet, "-o", tmp_path / "loc", "-w", weights, "--maps", "-q")
    assert r.exit_code == 0, r.output
    maps = np.load(tmp_path / "loc" / f"{duet.stem}.npz")["maps"]
    assert maps.ndim == 3 and np.isfinite(maps).all()


def test_film_head_trains_separates_and_refuses_pixel_maps(motion_set, tmp_path):
    run = tmp_path / "film"
    r = _invoke("train", "--data", motion_set / "data" / "solos", "-o", run, "--preset", "tiny-motion", "--fusion", "film",
                "--steps", "2", "--val-every", "2", "--no-curriculum", "--cache", motion_set / "cache", "-q")
    assert r.exit_code == 0, r.output
    duet = sorted((motion_set / "data" / "duets").glob("*.mp4"))[0]
    r = _invoke("separate", duet, "-o", tmp_path / "sep", "-w", run / "last.safetensors", "--grid", "1x2", "-q")
    assert r.exit_code == 0, r.output
    r = _invoke("localize", duet, "-o", tmp_path / "loc", "-w", run / "last.safetensors", "-q")
    assert r.exit_code != 0 and "FiLM head" in r.output and "--method onsets" in r.output


def test_equal_level_brings_sources_to_one_level(motion_set):
    from avsplit.data.mixing import MIN_WINDOW_RMS, equalising_factors

    quiet, loud, silent = np.full(100, 0.01, np.float32), np.full(100, 0.4, np.float32), np.zeros(100, np.float32)
    factors = equalising_factors([quiet, loud, silent])
    assert factors[2] == 1.0 and np.isclose(factors[0] * 0.01, factors[1] * 0.4, rtol=1e-5)
    assert np.isclose(factors[0] * 0.01, np.sqrt(0.01 * 0.4), rtol=1e-5)  # the geometric mean of the loud ones
    cfg, videos = _tiny_motion_videos(motion_set)
    for video, level in zip(videos, (1.0, 0.03)):  # clips recorded 30 dB apart
        video.audio_window = lambda start, length, read=video.audio_window, level=level: read(start, length) * np.float32(level)
    plain = MixSampler(videos, cfg, seed=5, augment=NO_AUGMENT)
    equal = MixSampler(videos, cfg, seed=5, augment=dataclasses.replace(NO_AUGMENT, equal_level=True))
    apart = 0
    for index in range(8):
        a, b = plain.example(index), equal.example(index)
        assert a.videos == b.videos and a.starts == b.starts  # only the levels change
        np.testing.assert_array_equal(a.frames, b.frames)
        before, rms = (np.sqrt(np.mean(x.audio.astype(np.float64) ** 2, axis=1)) for x in (a, b))
        if (before >= MIN_WINDOW_RMS).all():
            assert np.allclose(rms, rms[0], rtol=1e-3)
            apart += before.max() / before.min() > 3
    assert apart > 0  # some examples were far apart before
    wide = MixSampler(videos, cfg, seed=5, augment=dataclasses.replace(NO_AUGMENT, equal_level=True, gain_db=10.0))
    spreads = []
    for index in range(40):
        levels = np.sqrt(np.mean(wide.example(index).audio.astype(np.float64) ** 2, axis=1))
        if (levels >= MIN_WINDOW_RMS).all():
            spreads.append(20 * np.log10(levels.max() / levels.min()))
    assert len(spreads) > 20 and max(spreads) <= 20.01  # equal levels, then +-10 dB each
    assert max(spreads) > 12  # beyond what the default +-6 dB can make


def test_silent_sources_are_shown_but_not_heard(motion_set):
    """``--silent``: one source of an example is left out of the mixture (its audio all zeros) while
    its picture is kept, so its ideal mask is empty; the other source's clip and the pictures are
    drawn as without it, composites never have a silent half, and 0 leaves examples as they were."""
    from avsplit.dsp.transforms import ideal_binary_mask

    cfg, videos = _tiny_motion_videos(motion_set)
    plain = MixSampler(videos, cfg, seed=7, augment=NO_AUGMENT)
    assert all(np.array_equal(plain.example(i).audio, MixSampler(videos, cfg, seed=7, augment=dataclasses.replace(
        NO_AUGMENT, silent=0.0)).example(i).audio) for i in range(4))
    sampler = MixSampler(videos, cfg, seed=7, augment=dataclasses.replace(NO_AUGMENT, silent=1.0))
    silent_slots = set()
    for index in range(12):
        ex, heard = sampler.example(index), plain.example(index)
        assert ex.videos == heard.videos and ex.starts == heard.starts
        np.testing.assert_array_equal(ex.frames, heard.frames)
        levels = np.abs(ex.audio).max(axis=1)
        np.testing.assert_array_equal(ex.audio[levels > 0], heard.audio[levels > 0])
        assert (levels == 0).sum() == 1 and levels.max() > 0  # exactly one source is silent
        silent_slots.add(int(np.argmin(levels)))
        assert ex.frames.shape[0] == 2 and ex.frames.reshape(2, -1).std(axis=1).min() > 0  # both pictures shown
        magnitudes = torch.from_numpy(np.abs(ex.audio[:, :4096:4]).astype(np.float32))[None, :, None]  # (1, 2, 1, T)
        mask = ideal_binary_mask(magnitudes, magnitudes.sum(1))
        assert mask[0, int(np.argmin(levels))].sum() == 0
    assert silent_slots == {0, 1}  # either source may be the silent one
    both = MixSampler(videos, cfg, seed=7, augment=dataclasses.replace(NO_AUGMENT, silent=1.0, composite=1.0))
    assert all((np.abs(both.example(i).audio).max(axis=1) > 0).all() for i in range(6))


def _plain_and_augmented(motion_set, count: int = 4, **augment):
    """``count`` pairs of examples of one seed: without augmentation, and with only ``augment`` set.
    The first source's clip is drawn alike (an augmentation's own draws shift the later sources' ones)."""
    cfg, videos = _tiny_motion_videos(motion_set)
    plain = MixSampler(videos, cfg, seed=6, augment=NO_AUGMENT)
    changed = MixSampler(videos, cfg, seed=6, augment=dataclasses.replace(NO_AUGMENT, **augment))
    for index in range(count):
        a, b = plain.example(index), changed.example(index)
        assert a.videos == b.videos and a.starts[0] == b.starts[0]  # the same window of the same video
        yield a, b


def test_picture_styles_redraw_frames_and_leave_sound_and_flow(motion_set):
    for a, b in _plain_and_augmented(motion_set, styles=1.0):
        np.testing.assert_array_equal(a.audio[0], b.audio[0])
        np.testing.assert_array_equal(a.flow[0], b.flow[0])  # the motion is the video's, whatever the drawing
        assert b.frames.shape == a.frames.shape and not np.array_equal(a.frames[0], b.frames[0])


def test_sound_styles_change_the_sound_of_sources_and_nothing_else_they_draw(motion_set):
    level = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    for a, b in _plain_and_augmented(motion_set, sound_styles=1.0):
        assert b.audio.shape == a.audio.shape and np.isfinite(b.audio).all()
        assert not np.array_equal(a.audio[0], b.audio[0])
        assert level(b.audio[0]) == pytest.approx(level(a.audio[0]), rel=1e-3)  # no gain is drawn without augment
        np.testing.assert_array_equal(a.frames[0], b.frames[0])  # no crop is drawn either: the picture stays


def test_zoomed_crops_scale_frames_and_flow_together(motion_set):
    from avsplit.data.motion import resize_clip

    frames = np.zeros((2, 8, 12, 3), np.uint8)
    flow = np.zeros((1, 4, 6, 2), np.float16)
    flow[..., 0], flow[..., 1] = 1.0, -0.5
    big, big_flow = resize_clip(frames, flow, (16, 16), 2)
    assert big.shape == (2, 16, 16, 3) and big.dtype == np.uint8 and big_flow.shape == (1, 8, 8, 2)
    np.testing.assert_allclose(big_flow[..., 0], 16 / 12, rtol=1e-3)  # a displacement stretches with its axis
    np.testing.assert_allclose(big_flow[..., 1], -0.5 * 16 / 8, rtol=1e-3)

    cfg, videos = _tiny_motion_videos(motion_set)
    augment = dataclasses.replace(NO_AUGMENT, crop=True, zoom=3.0)
    sampler = MixSampler(videos, cfg, seed=2, augment=augment)
    crop, (h, w) = cfg.video.crop_size, (96, 128)
    ys, xs = np.mgrid[0:h, 0:w]
    coded = np.broadcast_to(np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8), (2, h, w, 3)).copy()  # pixel = its (x, y)
    uniform = np.zeros((3, h // 2, w // 2, 2), np.float16)
    uniform[..., 0] = 1.0
    zooms = []
    for seed in range(12):
        out, out_flow, _ = sampler._augment_frames(coded, np.random.default_rng(seed), uniform.copy())
        assert out.shape == (2, crop, crop, 3) and out_flow.shape == (3, crop // 2, crop // 2, 2)
        span = int(out[0, 0, -1, 0]) - int(out[0, 0, 0, 0]) + 1  # columns of the frame the crop was cut from
        zoom = crop / span
        np.testing.assert_allclose(out_flow[..., 0].astype(np.float32).mean(), zoom, rtol=0.1)
        zooms.append(zoom)
    assert min(zooms) == pytest.approx(1.0, abs=0.02) and 1.3 < max(zooms) <= 3.0 * 1.1  # half the clips zoomed, up to 3x
