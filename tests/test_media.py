"""The media layer: bad inputs give one-line typed errors, usable odd inputs work, and decoding
is exact (seeked windows equal full decodes, frames are the ones on screen, times share one
origin). Every file is generated here, small and short, with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avsplit import io as media
from avsplit.io import demux
from avsplit.errors import (
    EmptyMediaError,
    MissingMediaError,
    NoAudioStreamError,
    NoVideoStreamError,
    OutputError,
    TruncatedMediaError,
    UnreadableMediaError,
)

SR = 11025  # the model's audio rate

# ----------------------------------------------------------------------------- file makers


def barcode(k: int, w: int, h: int) -> np.ndarray:
    """A frame showing ``k`` (0..255) as 8 black/white vertical bars: survives lossy coding and resizing."""
    frame = np.zeros((h, w, 3), np.uint8)
    for bit in range(8):
        if (k >> bit) & 1:
            frame[:, bit * w // 8 : (bit + 1) * w // 8] = 255
    return frame


def read_barcode(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    k = 0
    for bit in range(8):
        x0, x1 = bit * w // 8, (bit + 1) * w // 8
        cell = frame[h // 4 : 3 * h // 4, x0 + (x1 - x0) // 4 : x1 - (x1 - x0) // 4]
        if cell.mean() > 127:
            k |= 1 << bit
    return k


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_av(
    path: Path,
    seconds: float = 2.0,
    fps: float = 24,
    size: tuple[int, int] = (64, 48),
    frame_times: list[float] | None = None,
    pix_fmt: str = "yuv420p",
    x264: dict | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int | None = 22050,
    layout: str = "mono",
    audio_codec: str = "aac",
    video: bool = True,
    fmt: str | None = None,
    options: dict | None = None,
    t0: float = 0.0,
) -> Path:
    """Write a test file with PyAV directly: frame k shows ``barcode(k)`` at ``frame_times[k]``
    (regular at ``fps`` by default, any irregular times for VFR); audio is ``audio``
    ``(channels, n)`` (default a 440 Hz tone); all timestamps start at ``t0``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    channels = av.AudioLayout(layout).nb_channels
    if audio_rate and audio is None:
        audio = np.stack([tone(440, audio_rate, seconds)] * channels)
    events = []
    if video:
        if frame_times is None:
            frame_times = [k / fps for k in range(int(round(seconds * fps)))]
        events += [(t, 0, k) for k, t in enumerate(frame_times)]
    if audio_rate:
        events += [(s / audio_rate, 1, s) for s in range(0, audio.shape[1], 1024)]
    events.sort()
    ms = Fraction(1, 1000)
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        vs = ast = None
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18", **(x264 or {})})
            vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
            vs.codec_context.time_base = ms
        if audio_rate:
            ast = out.add_stream(audio_codec, rate=audio_rate)
            ast.layout = layout
        for t, kind, k in events:
            if kind == 0:
                frame = av.VideoFrame.from_ndarray(barcode(k, w, h), format="rgb24")
                frame.pts, frame.time_base = int(round((t + t0) * 1000)), ms
                packets = vs.encode(frame)
            else:
                chunk = np.ascontiguousarray(audio[:, k : k + 1024], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = audio_rate
                frame.pts, frame.time_base = k + int(round(t0 * audio_rate)), Fraction(1, audio_rate)
                packets = ast.encode(frame)
            for p in packets:
                out.mux(p)
        for stream in (vs, ast):
            if stream is not None:
                for p in stream.encode(None):
                    out.mux(p)
    return path


def cut(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def square_index(frame: np.ndarray) -> int:
    """Frame index of a conftest video (white square at x = 2k, 10 px wide, short videos)."""
    h = frame.shape[0]
    row = frame[h // 2].astype(int).min(axis=1)
    xs = np.flatnonzero(row > 200)
    return int(round(xs[0] / 2))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def check_message(exc: BaseException, path: Path, *words: str) -> str:
    """The error's text is one line naming the file and the fix."""
    text = str(exc)
    assert "\n" not in text and "\r" not in text, text
    assert str(path) in text, text
    for word in words:
        assert word in text, text
    return text


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Test media shared by the module, made once."""
    root = tmp_path_factory.mktemp("media")
    made = {}
    made["faststart"] = write_av(root / "faststart.mp4", seconds=6, options={"movflags": "+faststart"})
    made["index_at_end"] = write_av(root / "index_at_end.mp4", seconds=6)
    made["mkv"] = write_av(root / "clip.mkv", seconds=6)
    made["silent"] = write_av(root / "silent.mp4", seconds=1, audio_rate=None)
    made["m4a"] = write_av(root / "tone.m4a", seconds=1, video=False)
    made["wav"] = write_av(root / "tone.wav", seconds=1, video=False, audio_codec="pcm_s16le")
    return made


# ------------------------------------------------------------------------------ bad inputs


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    for call in (media.probe, lambda p: media.read_audio(p, SR), lambda p: list(media.iter_frames(p)), lambda p: media.read_frames(p, [0])):
        with pytest.raises(EmptyMediaError) as err:
            call(path)
        assert check_message(err.value, path) == f"{path}: file is empty (0 bytes). Re-download or re-export it."


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MissingMediaError) as err:
        media.probe(tmp_path / "nope.mp4")
    check_message(err.value, tmp_path / "nope.mp4", "no such file", "Check the path")
    with pytest.raises(UnreadableMediaError) as err:
        media.read_audio(tmp_path, SR)
    check_message(err.value, tmp_path, "is a folder")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    for call in (media.probe, lambda p: media.read_audio(p, SR), lambda p: list(media.iter_frames(p))):
        with pytest.raises(UnreadableMediaError) as err:
            call(path)
        assert not isinstance(err.value, TruncatedMediaError)
        check_message(err.value, path, "not a media file FFmpeg can read", "re-download or re-export")


def test_truncated_mp4_with_index_at_end(files, tmp_path):
    """PyAV's muxer writes the index (moov) last: a cut file has none and cannot be opened."""
    path = cut(files["index_at_end"], tmp_path / "cut.mp4")
    for call in (media.probe, lambda p: media.read_audio(p, SR), lambda p: list(media.iter_frames(p))):
        with pytest.raises(TruncatedMediaError) as err:
            call(path)
        assert isinstance(err.value, UnreadableMediaError)
        check_message(err.value, path, "incomplete MP4/MOV", "moov", "Re-download or re-export it")


@pytest.mark.parametrize("name", ["faststart", "mkv"])
def test_truncated_file_with_index_reads_only_what_is_there(files, tmp_path, name):
    """Index at the front (or an MKV header) survives the cut: the file opens and claims 6 s
    though data stops near 3 s. Windows inside the good part read exactly as in the complete
    file; anything past the cut raises TruncatedMediaError, never zeros."""
    whole = files[name]
    path = cut(whole, tmp_path / f"cut{whole.suffix}")
    info = media.probe(path)
    assert info.truncated and not media.probe(whole).truncated
    assert info.duration == pytest.approx(6.0, abs=0.1)  # what the index claims

    # Inside the good part: identical to the complete file.
    good = media.read_audio(path, SR, start=0.5, duration=1.0)
    np.testing.assert_allclose(good, media.read_audio(whole, SR, start=0.5, duration=1.0), atol=1e-5)
    frames = list(media.iter_frames(path, fps=8, start=0.5, duration=1.0))
    assert [read_barcode(f) for _, f in frames] == [int(np.floor(t * 24 + 1e-6)) for t, _ in frames]
    assert len(frames) == 8
    assert read_barcode(media.read_frames(path, [1.0])[0]) == 24

    # Past the cut: a typed error naming where the data stops.
    with pytest.raises(TruncatedMediaError) as err:
        media.read_audio(path, SR)
    text = check_message(err.value, path, "is truncated: its data stops at", "Re-download or re-export it")
    assert "although it claims 6." in text
    with pytest.raises(TruncatedMediaError):
        media.read_audio(path, SR, start=4.0, duration=1.0)
    with pytest.raises(TruncatedMediaError):
        media.read_audio(path, SR, start=2.0, duration=2.0)  # starts inside, ends past the cut
    got = []
    with pytest.raises(TruncatedMediaError):
        for t, _ in media.iter_frames(path, fps=8):
            got.append(t)
    assert 2.0 < got[-1] < 3.5  # the frames before the cut came first
    with pytest.raises(TruncatedMediaError):
        media.read_frames(path, [0.5, 5.0])
    with pytest.raises(TruncatedMediaError):
        list(media.iter_frames(path, start=5.0))


def test_video_without_audio(files):
    path = files["silent"]
    info = media.probe(path)
    assert info.has_video and not info.has_audio and info.audio_rate is None
    with pytest.raises(NoAudioStreamError) as err:
        media.read_audio(path, SR)
    assert check_message(err.value, path) == f"{path}: has no audio stream. Give a video with a sound track."
    with pytest.raises(NoAudioStreamError):
        info.require_audio()
    assert len(list(media.iter_frames(path, fps=8))) == 8


@pytest.mark.parametrize("name", ["m4a", "wav"])
def test_audio_only_file(files, name):
    path = files[name]
    info = media.probe(path)
    assert info.has_audio and not info.has_video and info.width is None
    assert info.duration == pytest.approx(1.0, abs=0.03)
    for call in (lambda p: list(media.iter_frames(p)), lambda p: media.read_frames(p, [0.0]), lambda p: p.require_video()):
        with pytest.raises(NoVideoStreamError) as err:
            call(info if call.__code__.co_names == ("require_video",) else path)
        assert check_message(err.value, path) == f"{path}: has no video stream. Give a video file, not an audio-only file."
    audio = media.read_audio(path, SR)
    assert len(audio) == SR  # exactly 1 s
    assert peak_hz(audio, SR) == pytest.approx(440, abs=2)


def test_video_stream_with_no_frames(tmp_path):
    """Issue 13 item 7: a video stream that holds no frame (sound only) is said to be so, not "truncated"."""
    from badmedia import zero_frame_video

    from avsplit.localize import localize_video

    path = zero_frame_video(tmp_path / "no-frames.mkv")
    info = media.probe(path)
    assert info.has_video and info.empty_video and not info.truncated
    expected = f"{path}: its video stream has no frames. Re-export it with its picture, or give another video."
    with pytest.raises(EmptyMediaError) as err:
        info.require_video()
    assert check_message(err.value, path) == expected
    with pytest.raises(EmptyMediaError) as err:
        localize_video(path, tmp_path / "out", method="onsets")
    assert str(err.value) == expected
    assert not (tmp_path / "out").exists()
    assert len(media.read_audio(path, SR)) >= 0.9 * SR  # the sound is still there
    good = write_av(tmp_path / "good.mkv", fmt="matroska")  # a normal file is not flagged
    assert not media.probe(good).empty_video


def test_variable_frame_rate(tmp_path):
    """Irregular timestamps (with B-frames, as phones write them): every requested time gets the
    frame that was on screen then, from the start, after a seek, and through read_frames."""
    times = [0.0, 0.04, 0.2, 0.25, 0.6, 0.61, 0.62, 1.0, 1.5, 1.53, 1.9]
    path = write_av(tmp_path / "vfr.mp4", frame_times=times, seconds=2.0, x264={"g": "4"})
    info = media.probe(path)
    assert info.variable_frame_rate and info.fps > 0

    def on_screen(t):
        return max(k for k, ft in enumerate(times) if ft <= t + 1e-9)

    got = list(media.iter_frames(path, fps=10))
    assert [t for t, _ in got] == pytest.approx([k / 10 for k in range(len(got))])
    assert 19 <= len(got) <= 21  # to the end of the file (2 s), not beyond
    assert [read_barcode(f) for _, f in got] == [on_screen(t) for t, _ in got]
    late = list(media.iter_frames(path, fps=10, start=1.05, duration=0.8))
    assert [round(t, 6) for t, _ in late] == [round(1.05 + k / 10, 6) for k in range(8)]
    assert [read_barcode(f) for _, f in late] == [on_screen(t) for t, _ in late]
    own = list(media.iter_frames(path))  # every frame at its own time
    assert [t for t, _ in own] == pytest.approx(times, abs=1e-3)
    assert [read_barcode(f) for _, f in own] == list(range(len(times)))
    scattered = [1.52, 0.3, 0.605, 1.95, 0.0]
    assert [read_barcode(f) for f in media.read_frames(path, scattered)] == [on_screen(t) for t in scattered]


def test_51_audio_at_48k(tmp_path):
    """5.1 at 48 kHz: FFmpeg mixes it down to mono and resamples; a tone in the front channels
    survives at the right pitch and level, the length is exact and seeked windows match."""
    rate, seconds = 48000, 2.0
    front = tone(440, rate, seconds)
    silent = np.zeros_like(front)
    six = np.stack([front, front, front, silent, silent, silent])  # FL FR FC LFE BL BR
    path = write_av(tmp_path / "surround.mp4", seconds=seconds, audio=six, audio_rate=rate, layout="5.1")
    info = media.probe(path)
    assert (info.audio_rate, info.audio_channels) == (48000, 6)
    audio = media.read_audio(path, SR)
    assert audio.dtype == np.float32 and audio.shape == (round(seconds * SR),)
    assert peak_hz(audio[2000:-2000], SR) == pytest.approx(440, abs=2)
    rms = float(np.sqrt(np.mean(audio[2000:-2000] ** 2)))
    assert 0.15 < rms < 0.5 and np.abs(audio).max() <= 1.0  # normalised downmix: no clipping
    window = media.read_audio(path, SR, start=1.234, duration=0.5)
    j = round(1.234 * SR)
    np.testing.assert_allclose(window, audio[j : j + len(window)], atol=1e-5)
    assert media.read_audio(path, 16000, mono=False).shape == (6, 32000)


def test_odd_frame_size(tmp_path):
    """321x241 (H.264 4:4:4 allows odd sizes): decodes at that size and resizes."""
    path = write_av(tmp_path / "odd.mp4", size=(321, 241), pix_fmt="yuv444p", seconds=1.0)
    info = media.probe(path)
    assert (info.width, info.height) == (321, 241)
    frames = list(media.iter_frames(path, fps=8))
    assert len(frames) == 8 and frames[0][1].shape == (241, 321, 3)
    assert [read_barcode(f) for _, f in frames] == [3 * k for k in range(8)]
    w, h = media.scaled_size(321, 241, short_side=128)
    small = list(media.iter_frames(path, fps=8, short_side=128))
    assert (w, h) == (170, 128) and small[5][1].shape == (128, 170, 3) and read_barcode(small[5][1]) == 15
    assert media.read_frames(path, [0.5], size=(99, 77)).shape == (1, 77, 99, 3)
    # VideoWriter pads odd sizes by one pixel (H.264 4:2:0 needs even sizes).
    out = tmp_path / "written.mp4"
    with media.VideoWriter(out, fps=8, width=321, height=241) as writer:
        for _, frame in frames:
            writer.write(frame)
    back = media.read_frames(out, [0.5])[0]
    assert back.shape == (242, 322, 3) and read_barcode(back[:241, :321]) == 12


def test_path_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "my vidéos — 日本語"
    path = write_av(folder / "clip ünïcødé ✓ 01.mp4", seconds=1.0)
    assert media.probe(path).has_audio
    assert len(media.read_audio(path, SR, start=0.25, duration=0.5)) == SR // 2
    assert len(list(media.iter_frames(path, fps=8, short_side=32))) == 8
    assert media.read_frames(path, [0.9]).shape == (1, 48, 64, 3)
    wav = media.write_audio(folder / "source 1 — ü.wav", media.read_audio(path, SR), SR)
    assert media.read_audio_file(wav)[1] == SR
    out = folder / "out ✓.mp4"
    with media.VideoWriter(out, fps=24, width=64, height=48, copy_audio_from=path) as writer:
        for _, frame in media.iter_frames(path):
            writer.write(frame)
    assert media.probe(out).has_audio
    broken = folder / "brøken clip.mp4"
    broken.write_bytes(b"\0" * 100)
    with pytest.raises(UnreadableMediaError) as err:
        media.probe(broken)
    check_message(err.value, broken, "brøken clip.mp4")


# ---------------------------------------------------------------------------- correctness


class _Readers:
    """Records every stream reader the media functions create, to count decoded packets."""

    def __init__(self, monkeypatch):
        self.made = []
        real = demux._StreamReader.__init__

        def init(reader, *args, **kwargs):
            real(reader, *args, **kwargs)
            self.made.append(reader)

        monkeypatch.setattr(demux._StreamReader, "__init__", init)

    def packets(self) -> int:
        return sum(r.packets for r in self.made)


def test_late_audio_window_is_seeked_and_exact(tmp_path, monkeypatch):
    """A window late in a long file equals the same slice of a full decode, and is reached by
    seeking: far fewer packets are decoded."""
    rate, seconds = 22050, 20.0
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.standard_normal(int(rate * seconds)), np.ones(8) / 8, "same").astype(np.float32) * 0.3
    path = write_av(tmp_path / "long.m4a", seconds=seconds, video=False, audio=noise[None], audio_rate=rate)
    readers = _Readers(monkeypatch)
    full = media.read_audio(path, SR)
    all_packets = readers.packets()
    assert len(full) == round(seconds * SR) and all_packets > 400
    for start in (15.3, 7.77777, 0.1):
        readers.made.clear()
        window = media.read_audio(path, SR, start=start, duration=1.0)
        j = round(start * SR)
        assert len(window) == SR
        np.testing.assert_allclose(window, full[j : j + SR], atol=1e-5, rtol=0)
        assert readers.packets() < 0.1 * all_packets  # ~1.3 s of packets out of 20 s
    chunks = list(media.iter_audio(path, SR, start=3.0, duration=2.0))
    assert len(chunks) > 1 and all(c.shape[0] == 1 for c in chunks)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1)[0], full[3 * SR : 5 * SR], atol=1e-5)
    # Past the end of a complete file: shorter, not padded, no error.
    assert len(media.read_audio(path, SR, start=19.5, duration=2.0)) == SR // 2
    assert media.read_audio(path, SR, start=25.0, duration=1.0).shape == (0,)


def test_iter_frames_is_frame_accurate(make_video):
    """The conftest video: frame k has red level 3k and a white square at x = 2k."""
    path = make_video("clip.mp4", seconds=3.0, fps=24.0)
    every = list(media.iter_frames(path))
    assert len(every) == 72
    for k, (t, frame) in enumerate(every):
        assert t == pytest.approx(k / 24, abs=1e-6)
        assert square_index(frame) == k
        assert abs(float(frame[..., 0][:10, :10].mean()) - (3 * k) % 256) <= 4
    for fps, start, duration in [(8, 0.0, None), (10, 0.0, None), (8, 1.3, 1.0), (5, 2.05, None)]:
        got = list(media.iter_frames(path, fps=fps, start=start, duration=duration))
        expected_times = [start + k / fps for k in range(len(got))]
        assert [t for t, _ in got] == pytest.approx(expected_times, abs=1e-9)
        span = (3.0 - start) if duration is None else duration
        assert len(got) == int(np.ceil(span * fps - 1e-9))
        for t, frame in got:
            k = int(np.floor(t * 24 + 1e-6))
            np.testing.assert_array_equal(frame, every[k][1])  # bit-exact, even after a seek
    small = list(media.iter_frames(path, fps=8, short_side=60))
    assert small[0][1].shape == (60, 80, 3) and len(small) == 24


def test_read_frames_scattered(make_video, tmp_path, monkeypatch):
    path = make_video("clip.mp4", seconds=3.0, fps=24.0)
    every = [f for _, f in media.iter_frames(path)]
    times = [2.5, 0.0, 1.04, 1.04, 0.51, -1.0, 99.0, 2.99]
    got = media.read_frames(path, times)
    assert got.shape == (len(times), 120, 160, 3)
    for t, frame in zip(times, got):
        k = min(71, max(0, int(np.floor(t * 24 + 1e-6))))
        np.testing.assert_array_equal(frame, every[k])
    assert media.read_frames(path, [1.0], short_side=60).shape == (1, 60, 80, 3)
    # Far-apart times in a long video are reached by seeking (keyframe every second here).
    long = write_av(tmp_path / "long.mp4", seconds=12.0, fps=24, x264={"g": "24"}, audio_rate=None)
    readers = _Readers(monkeypatch)
    assert len(list(media.iter_frames(long, fps=1))) == 12
    total = readers.packets()
    readers.made.clear()
    picks = media.read_frames(long, [11.5, 0.2, 6.25])
    assert [read_barcode(f) for f in picks] == [276 % 256, 4, 150]
    assert readers.packets() < 0.4 * total
    readers.made.clear()
    assert [read_barcode(f) for _, f in media.iter_frames(long, fps=4, start=10.0, duration=1.0)] == [240, 246, 252, 2]
    assert readers.packets() < 0.2 * total


def test_scaled_size():
    assert media.scaled_size(1280, 720, short_side=256) == (456, 256)
    assert media.scaled_size(720, 1280, short_side=256) == (256, 456)
    assert media.scaled_size(320, 240, short_side=256) == (342, 256)
    assert media.scaled_size(321, 241) == (321, 241)
    assert media.scaled_size(321, 241, short_side=128, size=(100, 50)) == (100, 50)
    with pytest.raises(ValueError):
        media.scaled_size(320, 240, short_side=0)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_audio_round_trip(tmp_path, ext):
    rate = 22050
    stereo = np.stack([tone(440, rate, 0.5), tone(660, rate, 0.5, amp=0.25)])
    path = media.write_audio(tmp_path / f"out.{ext}", stereo, rate)
    back, back_rate = media.read_audio_file(path)
    assert back_rate == rate and back.shape == stereo.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, stereo, atol=1.0 / 32000)
    np.testing.assert_allclose(media.read_audio(path, rate, mono=False), stereo, atol=1.0 / 32000)
    loud = media.write_audio(tmp_path / f"loud.{ext}", np.full(100, 3.0, np.float32), rate)
    assert media.read_audio_file(loud)[0].max() == pytest.approx(1.0, abs=1e-4)  # clipped
    exact = media.write_audio(tmp_path / "float.wav", stereo[0], rate, subtype="FLOAT")
    np.testing.assert_array_equal(media.read_audio_file(exact)[0][0], stereo[0])
    with pytest.raises(ValueError):
        media.write_audio(tmp_path / f"nan.{ext}", np.array([0.0, np.nan]), rate)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"out.{ext}", f"loud.{ext}", "float.wav"])


def test_video_writer_with_array_audio(tmp_path):
    out = tmp_path / "out.mp4"
    rate = 22050
    wave = tone(440, rate, 2.5)  # longer than the video: cut at its end
    with media.VideoWriter(out, fps=24, width=64, height=48, audio=wave, audio_rate=rate) as writer:
        for k in range(48):
            writer.write(barcode(k, 64, 48))
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        v_len, a_len = float(v.duration * v.time_base), float(a.duration * a.time_base)
    assert v_len == pytest.approx(2.0, abs=1e-3) and a_len == pytest.approx(2.0, abs=0.025)
    audio = media.read_audio(out, rate)
    assert abs(len(audio) - 2 * rate) <= 0.025 * rate
    np.testing.assert_allclose(audio[2000:40000], wave[2000:40000], atol=0.05)
    assert [read_barcode(f) for _, f in media.iter_frames(out, fps=4)] == list(range(0, 48, 6))
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("source_kind", ["mp4", "ts", "wav"])
def test_video_writer_copies_audio(make_video, tmp_path, source_kind):
    """AAC in MP4 is copied packet for packet; other sources (ADTS AAC in MPEG-TS, PCM) are
    re-encoded. Audio survives and ends with the video."""
    if source_kind == "mp4":
        source = make_video("src.mp4", seconds=2.0, fps=24.0, freq=440.0)
    elif source_kind == "ts":
        source = write_av(tmp_path / "src.ts", seconds=2.0, fmt="mpegts", t0=1.4)
    else:
        source = write_av(tmp_path / "src.wav", seconds=2.0, video=False, audio_codec="pcm_s16le")
    out = tmp_path / "out.mp4"
    with media.VideoWriter(out, fps=24, width=64, height=48, copy_audio_from=source) as writer:
        for k in range(48):
            writer.write(barcode(k, 64, 48))
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert a.codec_context.name == "aac"
        v_len, a_len = float(v.duration * v.time_base), float(a.duration * a.time_base)
    assert a_len == pytest.approx(v_len, abs=0.05)
    src_audio = media.read_audio(source, SR, duration=2.0)
    out_audio = media.read_audio(out, SR)
    assert abs(len(out_audio) - len(src_audio)) <= 0.05 * SR
    n = min(len(src_audio), len(out_audio)) - 1000
    if source_kind == "mp4":
        np.testing.assert_allclose(out_audio[:n], src_audio[:n], atol=1e-4)  # the same packets
    else:
        assert peak_hz(out_audio[1000:n], SR) == pytest.approx(440, abs=2)
        assert np.corrcoef(out_audio[2000:n], src_audio[2000:n])[0, 1] > 0.95  # in sync
    assert list(tmp_path.glob(".*part*")) == []


def test_writers_are_atomic(tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with media.VideoWriter(out, fps=24, width=64, height=48, audio=tone(440, 22050, 1), audio_rate=22050) as writer:
            writer.write(barcode(1, 64, 48))
            raise Boom
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        with media.VideoWriter(out, fps=24, width=64, height=48) as writer:
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []

    # An output folder that is a file.
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as err:
        media.VideoWriter(tmp_path / "file" / "out.mp4", fps=24, width=64, height=48)
    check_message(err.value, tmp_path / "file", "not a folder")
    with pytest.raises(OutputError):
        media.write_audio(tmp_path / "file" / "out.wav", np.zeros(10), 8000)

    # A read-only folder (root can write anyway: then the kernel's refusal is simulated).
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            import avsplit.files as files_mod

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(files_mod.tempfile, "mkstemp", refuse)
        with pytest.raises(OutputError) as err:
            media.VideoWriter(locked / "out.mp4", fps=24, width=64, height=48)
        check_message(err.value, locked, "writable")
        with pytest.raises(OutputError) as err:
            media.write_audio(locked / "out.wav", np.zeros(10), 8000)
        check_message(err.value, locked, "writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_mpegts_times_start_at_zero_for_audio_and_video(tmp_path):
    """MPEG-TS timestamps start at 1.4 s: times are from the start of the file for both streams,
    so an audio onset and a picture change at 1.0 s are found at 1.0 s in both."""
    rate, seconds = 22050, 2.0
    t = np.arange(int(rate * seconds)) / rate
    onset = (0.5 * np.sin(2 * np.pi * 440 * t) * (t >= 1.0)).astype(np.float32)
    fps = 25
    times = [k / fps for k in range(int(seconds * fps))]
    path = write_av(tmp_path / "clip.ts", seconds=seconds, fps=fps, frame_times=times, audio=onset[None], fmt="mpegts", t0=1.4)
    info = media.probe(path)
    assert info.start_time == pytest.approx(1.4, abs=0.1)
    assert info.duration == pytest.approx(2.0, abs=0.15)
    assert 0 <= info.audio_start < 0.1 and 0 <= info.video_start < 0.1
    audio = media.read_audio(path, SR)
    assert len(audio) == pytest.approx(seconds * SR, abs=0.1 * SR)  # not 3.4 s
    audio_onset = np.flatnonzero(np.abs(audio) > 0.1)[0] / SR
    # (ADTS AAC carries its 1024-sample encoder delay: up to ~50 ms late, for both streams alike)
    assert audio_onset == pytest.approx(1.0, abs=0.07)
    frames = list(media.iter_frames(path, fps=50))
    change = next(t for t, f in frames if read_barcode(f) >= 25)
    assert change == pytest.approx(1.0, abs=0.07)
    assert abs(change - audio_onset) < 0.03  # in sync with each other
    window = media.read_audio(path, SR, start=0.9, duration=0.3)  # a seeked window, same origin
    j = round(0.9 * SR)
    np.testing.assert_allclose(window, audio[j : j + len(window)], atol=1e-5)
    late = list(media.iter_frames(path, fps=25, start=1.2, duration=0.2))
    assert [read_barcode(f) for _, f in late] == [read_barcode(f) for t, f in frames if 1.2 - 1e-9 <= t < 1.4 - 1e-9][::2]


def test_audio_gap_is_silence_and_keeps_sync(tmp_path):
    """Audio packets missing in the middle (timestamps jump 0.5 s): the hole is silence and what
    follows stays at its time, so the sound does not drift ahead of the pictures."""
    rate = 22050
    wave = tone(440, rate, 2.0)
    chunks = list(range(0, wave.size, 1024))
    lost = [s for s in chunks if 0.8 * rate <= s < 1.3 * rate]
    path = tmp_path / "gap.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for s in chunks:
            if s in lost:
                continue
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, s : s + 1024]), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    audio = media.read_audio(path, rate)
    assert len(audio) == pytest.approx(2 * rate, abs=2048)
    hole = slice(lost[0] + 2048, lost[-1] - 1024)
    assert np.abs(audio[hole]).max() < 0.02
    after = slice(lost[-1] + 4096, lost[-1] + 8192)
    np.testing.assert_allclose(audio[after], wave[after], atol=0.05)  # in place, not early
    late = media.read_audio(path, rate, start=1.5, duration=0.2)
    np.testing.assert_allclose(late, audio[int(1.5 * rate) : int(1.7 * rate)], atol=1e-5)


@pytest.mark.parametrize(
    "name, codec, rate, layout, atol",
    [
        ("opus.webm", "libopus", 48000, "stereo", 5e-4),  # YouTube's audio; 1 ms timestamps, pre-skip
        ("flac.mkv", "flac", 44100, "stereo", 1e-5),
        ("mp3.mp3", "libmp3lame", 44100, "stereo", 1e-5),
        ("ac3.mkv", "ac3", 48000, "5.1", 1e-5),
        ("raw.flac", "soundfile", 8000, "mono", 1e-5),  # its demuxer refuses some seeks
    ],
)
def test_windows_equal_full_decode_across_codecs(tmp_path, name, codec, rate, layout, atol):
    """Opus states no exact sample positions (WebM times are in ms, and the decoder skips its
    pre-roll again after a seek), FLAC files refuse some seeks: windows still line up."""
    if codec == "soundfile":
        import soundfile

        path = tmp_path / name
        soundfile.write(str(path), tone(440, rate, 3.0), rate)
    else:
        if codec not in av.codecs_available:
            pytest.skip(f"{codec} not in this FFmpeg build")
        path = write_av(tmp_path / name, seconds=3.0, video=False, audio_codec=codec, audio_rate=rate, layout=layout)
    full = media.read_audio(path, SR)
    assert len(full) == pytest.approx(3 * SR, abs=0.01 * SR)
    assert peak_hz(full[500:-500], SR) == pytest.approx(440, abs=2)
    for start in (0.77, 1.5, 1.91, 2.2):
        window = media.read_audio(path, SR, start=start, duration=0.5)
        j = round(start * SR)
        np.testing.assert_allclose(window, full[j : j + len(window)], atol=atol, rtol=0)


def test_matroska_millisecond_times_are_frame_accurate(tmp_path):
    """Matroska rounds 30 fps frame times to the millisecond (frame 20 at 0.667 s): sampling at
    exactly k/3 s still gives frame 10k, from the start, after a seek and by read_frames."""
    path = write_av(tmp_path / "clip.mkv", seconds=4.0, fps=30, audio_rate=None, x264={"g": "15"})
    assert [read_barcode(f) for _, f in media.iter_frames(path, fps=3)] == [10 * k for k in range(12)]
    assert [read_barcode(f) for _, f in media.iter_frames(path, fps=3, start=2 / 3, duration=1.0)] == [20, 30, 40]
    assert [read_barcode(f) for f in media.read_frames(path, [2 / 3, 7 / 3, 1 / 3])] == [20, 70, 10]
    own = list(media.iter_frames(path, start=2 / 3, duration=0.1))
    assert [read_barcode(f) for _, f in own] == [20, 21, 22]
