"""Dataset scanning, Sound-of-Pixels index CSVs and the preprocessing cache."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from avsplit.config import AudioSettings, PreprocessSettings, VideoSettings
from avsplit.data import CacheMissError, PreprocessCache
from avsplit.data import cache as cache_mod
from avsplit.data import decode as decode_mod
from avsplit.errors import MediaError
from avsplit.scan import DatasetError, VideoItem, load_dataset, read_sop_csv, scan_videos

from conftest import write_test_video

SETTINGS = PreprocessSettings(AudioSettings(sample_rate=8000), VideoSettings(fps=8.0, short_side=64))


def _peak_hz(audio: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spec) * rate / audio.size)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


# ------------------------------------------------------------------------------------ scanning


def test_scan_with_category_folders(tmp_path):
    root = tmp_path / "music"
    _touch(root / "violin" / "v1.mp4")
    _touch(root / "solos" / "violin" / "v2.MOV")
    _touch(root / "cello" / "c1.mkv")
    _touch(root / "loose.mp4")
    _touch(root / "notes.txt")
    _touch(root / ".hidden" / "h.mp4")
    items = scan_videos(root)
    assert [i.id for i in items] == ["cello/c1", "loose", "solos/violin/v2", "violin/v1"]
    # the category is the folder holding the video (MUSIC layout, and synth's solos/<category>/)
    assert [i.category for i in items] == ["cello", None, "violin", "violin"]
    assert all(not i.is_sop and i.sources == (i.path,) for i in items)
    assert scan_videos(root) == items  # deterministic


def test_scan_flat_folder_and_id_clash(tmp_path):
    _touch(tmp_path / "b.mp4")
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "a.mkv")
    items = scan_videos(tmp_path)
    assert [i.category for i in items] == [None, None, None]
    assert [i.id for i in items] == ["a.mkv", "a.mp4", "b"]
    with pytest.raises(DatasetError):
        scan_videos(tmp_path / "a.mp4")


def _make_sop(tmp_path: Path, n_frames: int = 4, seconds: float = 0.5) -> Path:
    """A SoP-style layout: audio/<cat>/<id>.wav, frames/<cat>/<id>.mp4/000001.jpg..., an index CSV."""
    audio = tmp_path / "data" / "audio" / "flute" / "f1.wav"
    frames = tmp_path / "data" / "frames" / "flute" / "f1.mp4"
    audio.parent.mkdir(parents=True)
    frames.mkdir(parents=True)
    t = np.arange(int(seconds * 16000)) / 16000
    soundfile.write(str(audio), (0.4 * np.sin(2 * np.pi * 600 * t)).astype(np.float32), 16000)
    for i in range(n_frames):
        img = np.zeros((30, 40, 3), np.uint8)
        img[..., 0] = 40 * i + 20
        Image.fromarray(img).save(frames / f"{i + 1:06d}.jpg", quality=95)
    csv = tmp_path / "data" / "train.csv"
    csv.write_text(f"audio/flute/f1.wav,{frames},{n_frames}\n\n")
    return csv


def test_read_sop_csv_and_build(tmp_path):
    csv = _make_sop(tmp_path)
    (item,) = read_sop_csv(csv)
    assert item.is_sop and item.category == "flute" and item.id == "flute/f1"
    assert item.audio_path == tmp_path / "data" / "audio" / "flute" / "f1.wav"  # relative to the CSV
    assert item.num_frames == 4 and item.frames_fps == 8.0
    assert load_dataset(csv) == [item]

    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    report = cache.build([item])
    assert report.decoded == 1 and not report.failed
    video = cache.get(item)
    assert video.frames.shape == (4, 64, 86, 3)  # 40x30 -> short side 64, even sizes
    assert np.allclose(video.frames[:, 32, 43, 0], [20, 60, 100, 140], atol=6)
    assert video.num_samples == 4000 and abs(_peak_hz(video.audio, 8000) - 600) < 10
    assert video.category == "flute" and video.fps == 8.0 and (video.width, video.height) == (40, 30)


def test_sop_missing_frame_is_a_failure(tmp_path):
    csv = _make_sop(tmp_path)
    (item,) = read_sop_csv(csv)
    item = VideoItem(item.path, item.category, item.id, item.frames_dir, num_frames=6, frames_fps=8.0)
    report = PreprocessCache(tmp_path / "cache", SETTINGS).build([item])
    assert not report.ready and "000005.jpg is missing" in report.failed[0][1]


@pytest.mark.parametrize(
    "row, message",
    [
        ("a.wav,frames", "expected 3 comma-separated fields, found 2"),
        ("a.wav,frames,12,extra", "found 4"),
        ("a.wav,frames,twelve", "NUM_FRAMES is not a whole number"),
        ("a.wav,frames,0", "NUM_FRAMES must be positive"),
        (",frames,3", "empty AUDIO_PATH"),
    ],
)
def test_sop_csv_malformed_rows(tmp_path, row, message):
    csv = tmp_path / "index.csv"
    csv.write_text(f"AUDIO_PATH,FRAMES_PATH,NUM_FRAMES\nx/ok.wav,x/ok.mp4,5\n{row}\n")
    with pytest.raises(DatasetError) as info:
        read_sop_csv(csv)
    text = str(info.value)
    assert f"{csv}:3: " in text and message in text and "\n" not in text


def test_load_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no video files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing")
    _touch(tmp_path / "weights.bin")
    with pytest.raises(DatasetError, match="neither a folder nor a .csv"):
        load_dataset(tmp_path / "weights.bin")
    _touch(tmp_path / "vids" / "a.mp4")
    assert [i.id for i in load_dataset(tmp_path / "vids")] == ["a"]


# ------------------------------------------------------------------------------------ the cache


@pytest.fixture
def dataset(tmp_path):
    """Two good videos (one portrait, stereo 44.1 kHz) and three broken ones."""
    root = tmp_path / "ds"
    (root / "violin").mkdir(parents=True)
    (root / "cello").mkdir()
    write_test_video(root / "violin" / "v1.mp4", seconds=1.0, freq=440.0)
    write_test_video(root / "cello" / "c 1 é.mp4", seconds=1.0, size=(120, 160), sample_rate=44100, channels=2, freq=1000.0)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    write_test_video(root / "silent_film.mp4", seconds=0.5, sample_rate=None)
    return root


def _by_id(report):
    return {v.id: v for v in report.ready}


def test_build_parallel_content_failures_and_reuse(tmp_path, dataset):
    items = scan_videos(dataset)
    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    report = cache.build(items, jobs=2)
    assert report.decoded == 2 and report.reused == 0

    failed = {p.name: reason for p, reason in report.failed}
    assert set(failed) == {"empty.mp4", "text.mp4", "silent_film.mp4"}
    assert "empty" in failed["empty.mp4"]
    assert "not a media file" in failed["text.mp4"]
    assert "no audio stream" in failed["silent_film.mp4"]
    assert all("\n" not in r for r in failed.values())

    ready = _by_id(report)
    assert set(ready) == {"violin/v1", "cello/c 1 é"}
    for vid, size, freq in (("violin/v1", (86, 64), 440), ("cello/c 1 é", (64, 86), 1000)):
        v = ready[vid]
        assert v.category == vid.split("/")[0]
        assert v.frames.shape == (8, size[1], size[0], 3) and v.frames.dtype == np.uint8
        assert isinstance(v.frames, np.memmap) and isinstance(v.audio, np.memmap)
        assert min(v.frames.shape[1:3]) == 64
        assert np.allclose(v.frame_times, np.arange(8) / 8.0)
        # Frame k of the source has red (3k) % 256; cached frame j is source frame 3j.
        assert np.allclose(v.frames[:, 2, 2, 0].astype(float), 9 * np.arange(8), atol=6)
        assert v.audio.dtype == np.float32 and abs(v.num_samples - 8000) < 400
        assert abs(_peak_hz(v.audio, 8000) - freq) < 10
        assert abs(v.duration - 1.0) < 0.05
    assert (ready["cello/c 1 é"].width, ready["cello/c 1 é"].height) == (120, 160)

    # A second build decodes nothing: entries are reused and known failures are not retried.
    again = cache.build(items, jobs=2)
    assert (again.decoded, again.reused, again.known_failures) == (0, 2, 3)
    assert [v.key for v in again.ready] == [v.key for v in report.ready]

    # The cache never hands out data for a failed file.
    bad = next(i for i in items if i.path.name == "silent_film.mp4")
    with pytest.raises(MediaError, match="no audio stream"):
        cache.get(bad)
    assert not cache.has(bad)
    # A status change (e.g. fixed permissions) retries a remembered failure.
    text_item = next(i for i in items if i.path.name == "text.mp4")
    os.chmod(text_item.path, 0o600)
    retried = cache.build([text_item])
    assert retried.known_failures == 0 and "not a media file" in retried.failed[0][1]


def test_reuse_does_not_decode(tmp_path, dataset, monkeypatch):
    items = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    assert cache.build(items).decoded == 1

    def boom(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode_mod.media, "iter_frames", boom)
    monkeypatch.setattr(decode_mod.media, "read_audio", boom)
    report = cache.build(items)
    assert (report.decoded, report.reused, len(report.ready)) == (0, 1, 1)


def test_touch_replace_and_settings_invalidate(tmp_path, dataset):
    (item,) = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    first = cache.build([item]).ready[0]

    st = item.path.stat()
    os.utime(item.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CacheMissError, match="not in the preprocessing cache"):
        cache.get(item)
    touched = cache.build([item])
    assert touched.decoded == 1 and touched.ready[0].key != first.key

    other = PreprocessCache(tmp_path / "cache", PreprocessSettings(AudioSettings(sample_rate=8000), VideoSettings(fps=4.0, short_side=32)))
    assert not other.has(item)
    v = other.build([item]).ready[0]
    assert v.frames.shape == (4, 32, 42, 3) and v.key != touched.ready[0].key
    assert cache.has(item)  # entries of other settings are kept side by side

    # A failed file that is fixed (replaced) is decoded on the next build.
    broken = dataset / "text.mp4"
    (bad,) = [i for i in scan_videos(dataset) if i.path == broken]
    assert cache.build([bad]).failed
    write_test_video(broken, seconds=0.5)
    fixed = cache.build([bad])
    assert fixed.decoded == 1 and not fixed.failed


def test_interrupted_build_leaves_no_entry(tmp_path, dataset, monkeypatch):
    (item,) = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    real = decode_mod.media.iter_frames

    def interrupted(*args, **kwargs):
        for n, pair in enumerate(real(*args, **kwargs)):
            if n == 3:
                raise KeyboardInterrupt
            yield pair

    monkeypatch.setattr(decode_mod.media, "iter_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.build([item])
    assert not cache.has(item)
    assert not any((tmp_path / "cache" / "tmp").iterdir())
    assert not any((tmp_path / "cache" / "entries").rglob("meta.json"))
    # A half entry left by a process that died is cleaned up by the next build.
    stale = tmp_path / "cache" / "tmp" / f"{'0' * 16}@{cache_mod.socket.gethostname()}@{2**30}@x"
    stale.mkdir()
    (stale / "frames.bin").write_bytes(b"\0" * 10)
    monkeypatch.setattr(decode_mod.media, "iter_frames", real)
    assert cache.build([item]).decoded == 1
    assert not stale.exists()


def test_windows_helpers_and_pickling(tmp_path, dataset):
    (item,) = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    v = PreprocessCache(tmp_path / "cache", SETTINGS).build([item]).ready[0]
    assert list(v.frames_in(0.25, 0.75, 2)) == [3, 5]
    assert list(v.frames_in(0.0, 1.0, 4)) == [1, 3, 5, 7]
    idx = v.frames_in(0.3, 0.6, 3)
    assert np.all((v.frame_times[idx] <= 0.6) & (v.frame_times[idx] >= 0.25))
    assert list(v.frames_in(5.0, 6.0, 2)) == [7, 7]
    n = v.num_samples
    w = v.audio_window(n - 100, 300)
    assert w.shape == (300,) and np.array_equal(w[:100], v.audio[n - 100 :]) and not np.any(w[100:])
    assert np.array_equal(v.audio_window(-10, 20)[10:], v.audio[:10])
    data = pickle.dumps(v)
    assert len(data) < 10_000  # the arrays are mapped again, not copied
    assert np.array_equal(pickle.loads(data).frames, v.frames)


class MeanRed:
    """A test extra: the mean red level of each frame."""

    name = "mean_red"
    version = "1"

    def compute(self, video, entry):
        with entry.stream_array("mean_red", np.float32) as out:
            for frame in video.frames:
                out.append(np.float32(frame[..., 0].mean()))
        entry.meta["extra"]["mean_red"] = {"frames": video.num_frames}


def test_extras_are_stored_and_keyed(tmp_path, dataset):
    (item,) = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    plain = PreprocessCache(tmp_path / "cache", SETTINGS)
    with_extra = PreprocessCache(tmp_path / "cache", SETTINGS, extras=[MeanRed()])
    assert plain.key(item) != with_extra.key(item)
    v = with_extra.build([item]).ready[0]
    assert v.array("mean_red").shape == (8,)
    assert np.allclose(v.array("mean_red"), v.frames[..., 0].mean(axis=(1, 2)), atol=1e-3)
    assert v.meta["extra"]["mean_red"] == {"frames": 8}
    with pytest.raises(KeyError):
        plain.build([item]).ready[0].array("mean_red")


def test_missing_source_and_unbuilt(tmp_path, dataset):
    cache = PreprocessCache(tmp_path / "cache", SETTINGS)
    ghost = VideoItem(tmp_path / "gone.mp4")
    report = cache.build([ghost])
    assert report.failed == [(ghost.path, "no such file. Check the path.")]
    (item,) = [i for i in scan_videos(dataset) if i.id == "violin/v1"]
    with pytest.raises(CacheMissError):
        cache.get(item)
    shutil.rmtree(tmp_path / "cache")
    assert not cache.has(item)


def test_choose_crop_follows_the_motion():
    from avsplit.data.motion import choose_crop

    h, w, size, scale = 64, 160, 48, 4
    flow = np.zeros((3, h // scale, w // scale, 2), np.float32)
    flow[:, 4:12, 30:38, 0] = 2.0  # the only mover: x 120-152, inside the frame's right end
    picks = [choose_crop(h, w, size, scale, 8, np.random.default_rng(seed), flow) for seed in range(20)]
    assert all(y % scale == 0 and x % scale == 0 and 0 <= y <= h - size and 0 <= x <= w - size for y, x in picks)
    assert sum(x + size > 120 for _, x in picks) >= 17  # the mover is (almost) always kept in view
    # one candidate: a plain random crop, drawn as before (two integers, rounded down to the flow grid)
    rng = np.random.default_rng(5)
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    assert choose_crop(h, w, size, scale, 1, np.random.default_rng(5), flow) == (y // scale * scale, x // scale * scale)
    random_picks = [choose_crop(h, w, size, scale, 1, np.random.default_rng(seed), flow) for seed in range(20)]
    assert sum(x + size > 120 for _, x in random_picks) < 14
    least = [choose_crop(h, w, size, scale, 8, np.random.default_rng(seed), flow, least=True) for seed in range(20)]
    assert sum(x + size > 120 for _, x in least) <= 1  # least: the mover is (almost) always left out

