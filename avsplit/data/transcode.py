"""Re-encode a downloaded video into the dataset's one uniform MP4, and verify it with ``probe``.

Uniform: H.264 (yuv420p) at a constant frame rate, short side at most ``short_side`` (never
enlarged), AAC sound. A whole video keeps its sound track (AAC copied, anything else re-encoded,
streaming); a segment's sound is decoded for the segment only and encoded at 44.1 kHz.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from avsplit.errors import MediaError
from avsplit.io import MediaInfo, VideoWriter, iter_frames, probe, read_audio, scaled_size

#: Sample rate of the sound of trimmed segments.
SEGMENT_AUDIO_RATE = 44100
# A re-encoded file may be this much shorter or longer than asked (plus two frames): stream
# lengths of downloads differ by a fraction of a second.
_LENGTH_TOLERANCE = 1.0


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` of the output: scaled down to ``short_side`` (even sides), never up."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    return scaled_size(width, height, short_side)


def normalize_video(source: Path, dest: Path, segment: tuple[float, float] | None, *, fps: float,
                    short_side: int | None) -> MediaInfo:
    """Write ``source`` (its ``segment`` in seconds, or all of it) as the uniform MP4 ``dest``.

    ``dest`` appears only when complete and verified; returns its :class:`MediaInfo`. Raises a
    :class:`MediaError` (unreadable download, no sound, segment past the end, failed check) or
    :class:`OutputError` (cannot write, disk full).
    """
    info = probe(source).require_video().require_audio()
    start, end = segment if segment is not None else (0.0, info.duration)
    if start >= info.duration:
        raise MediaError(f"the segment starts at {start:g} s but the video is {info.duration:.1f} s long",
                         source, "check the segment in the index")
    end = min(end, info.duration)
    width, height = output_size(info.width, info.height, short_side)
    if segment is None:
        audio = {"copy_audio_from": source}
    else:
        mono = (info.audio_channels or 1) != 2
        audio = {"audio": read_audio(source, SEGMENT_AUDIO_RATE, start, end - start, mono=mono),
                 "audio_rate": SEGMENT_AUDIO_RATE}
    frames = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.verify.part.mp4")
    try:
        with VideoWriter(tmp, fps=fps, width=width, height=height, **audio) as writer:
            for _, frame in iter_frames(source, fps=fps, start=start, duration=end - start, size=(width, height)):
                writer.write(frame)
                frames += 1
            if frames == 0:
                raise MediaError(f"no frames between {start:g} s and {end:g} s", source, "check the segment in the index")
        result = check_uniform(tmp, expected_seconds=end - start, fps=fps)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(result, path=dest)


def check_uniform(path: Path, expected_seconds: float | None = None, fps: float | None = None) -> MediaInfo:
    """Probe ``path`` and check it is a complete H.264 + AAC file (of about ``expected_seconds``)."""
    info = probe(path)
    problems = []
    if not info.has_video or not info.has_audio:
        problems.append("it lacks a video or an audio stream")
    elif (info.video_codec, info.audio_codec) != ("h264", "aac"):
        problems.append(f"its codecs are {info.video_codec}/{info.audio_codec}, not h264/aac")
    if info.truncated:
        problems.append("its data stops before its declared end")
    if expected_seconds is not None:
        slack = _LENGTH_TOLERANCE + (2.0 / fps if fps else 0.0)
        if abs(info.duration - expected_seconds) > slack:
            problems.append(f"it is {info.duration:.2f} s long, not {expected_seconds:.2f} s")
    if problems:
        raise MediaError(f"failed the check after re-encoding: {'; '.join(problems)}", path,
                         "delete it and run again; if it fails again, the download is damaged")
    return info
