"""Media of many kinds, good and bad, made with PyAV for the bad-input matrix and the fuzz test."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from conftest import write_still_video, write_test_video


def _av_file(path: Path, fmt: str | None, vcodec: str | None, acodec: str | None, size=(64, 48), fps=12,
             seconds=1.0, rate=22050, layout="mono", pix="yuv420p", audio_seconds=None, audio_offset=0.0,
             vfr=False) -> Path:
    """A video written with PyAV: ``vcodec`` frames (a moving square) and an ``acodec`` tone."""
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(vcodec, rate=fps) if vcodec else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = w, h, pix
            vs.time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
        ast = out.add_stream(acodec, rate=rate, layout=layout) if acodec else None
        if vs is not None:
            t = 0.0
            for k in range(int(round(seconds * fps))):
                img = np.zeros((h, w, 3), np.uint8)
                img[..., 0] = (20 * k) % 256
                img[: max(1, h // 3), (3 * k) % max(1, w) :] = 255
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = int(round(t * 1000)) if vfr else k
                t += (0.5 if k % 2 else 1.5) / fps if vfr else 1 / fps
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode(None):
                out.mux(p)
        if ast is not None:
            n = int(round((audio_seconds or seconds) * rate))
            channels = av.AudioLayout(layout).nb_channels
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
            data = np.tile(tone, (channels, 1))
            step = ast.codec_context.frame_size or 1024
            start = int(round(audio_offset * rate))
            for i in range(0, n, step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i : i + step]), format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = start + i
                frame.time_base = Fraction(1, rate)
                for p in ast.encode(frame):
                    out.mux(p)
            for p in ast.encode(None):
                out.mux(p)
    return path


def zero_frame_video(path: Path) -> Path:
    """A Matroska file with a video stream that holds no frame at all, and 1 s of sound."""
    return _av_file(path, "matroska", "libx264", "aac", seconds=0.0, audio_seconds=1.0)


def remux(source: Path, target: Path, faststart: bool) -> Path:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4", options=options) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return target


def make_matrix(folder: Path, scratch: Path) -> tuple[list[str], list[str]]:
    """Write the matrix's media into ``folder``; returns ``(names that must fail, names that must work)``."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    bad: list[str] = []
    good: list[str] = []

    def add(name: str, ok: bool) -> Path:
        (good if ok else bad).append(name)
        return folder / name

    add("zero-byte.mp4", False).write_bytes(b"")
    add("text.mp4", False).write_text("this is not a video\n" * 20)
    add("html.webm", False).write_text("<html><body>404 not found</body></html>")
    add("random.mkv", False).write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    plain = write_test_video(scratch / "plain.mp4", seconds=2.0, size=(64, 48))
    fast = remux(plain, scratch / "fast.mp4", faststart=True)
    add("trunc-moov-start.mp4", False).write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.6)])
    add("trunc-moov-end.mp4", False).write_bytes(plain.read_bytes()[: int(plain.stat().st_size * 0.6)])
    add("header-only.mp4", False).write_bytes(plain.read_bytes()[:64])
    write_test_video(add("no-audio.mp4", False), seconds=1.0, size=(64, 48), sample_rate=None)
    _av_file(add("no-video.mp4", False), "mp4", None, "aac")
    _av_file(add("anim.gif", False), "gif", "gif", None, pix="rgb8")
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(scratch / "pic.png")
    add("png-renamed.mp4", False).write_bytes((scratch / "pic.png").read_bytes())
    _av_file(add("vfr.mp4", True), "mp4", "libx264", "aac", vfr=True, seconds=2.0)
    zero_frame_video(add("no-frames.mkv", False))
    _av_file(add("surround-48k.mp4", True), "mp4", "libx264", "aac", rate=48000, layout="5.1")
    _av_file(add("hires-96k.mp4", True), "mp4", "libx264", "aac", rate=96000)
    write_test_video(add("one-pixel.mp4", True), seconds=1.0, size=(1, 1))
    write_test_video(add("uhd-4k.mp4", True), seconds=0.25, size=(3840, 2160), fps=8)
    write_test_video(add("odd-33x17.mp4", True), seconds=1.0, size=(33, 17))
    write_test_video(add("short-0.2s.mp4", True), seconds=0.2, size=(64, 48))
    _av_file(add("vp9-opus.webm", True), "webm", "libvpx-vp9", "libopus", rate=48000)
    _av_file(add("h264-flac.mkv", True), "matroska", "libx264", "flac")
    _av_file(add("mjpeg-pcm.mov", True), "mov", "mjpeg", "pcm_s16le", pix="yuvj420p")
    _av_file(add("mpeg2.ts", True), "mpegts", "mpeg2video", "mp2", rate=44100)
    _av_file(add("audio-shorter.mp4", True), "mp4", "libx264", "aac", seconds=2.0, audio_seconds=0.7)
    _av_file(add("audio-offset.mkv", True), "matroska", "libx264", "flac", seconds=2.0, audio_seconds=1.0, audio_offset=0.6)
    write_still_video(add("still-picture.mp4", True))
    write_test_video(add("silent.mp4", True), seconds=1.0, size=(64, 48), freq=0.0)
    write_test_video(add("stereo-44k.mov", True), seconds=1.0, size=(64, 48), sample_rate=44100, channels=2)
    write_test_video(add("\u00fcnic\u00f8de \u97f3 name.mp4", True), seconds=1.0, size=(64, 48))
    media_only = folder / "song.m4a"  # not a video by its extension: counted in the summary, not an error
    _av_file(media_only, "ipod", None, "aac")
    return bad, good
