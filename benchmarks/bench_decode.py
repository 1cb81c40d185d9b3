"""Decode throughput of the media layer, the way the preprocessing cache decodes.

For each video: frames at 8 fps resized to short side 256 through ``media.iter_frames`` and the
sound as mono at 11025 Hz through ``media.read_audio``, timed separately. Throughput is given as
a real-time factor (seconds of media decoded per second of wall time) and as output frames per
second. One JSON line per video, then a summary line per configuration and overall.

    python benchmarks/bench_decode.py                 # generates 30 s test videos (320x240@24, 1280x720@30)
    python benchmarks/bench_decode.py DIR [FILE ...]  # every video found in DIR, and the files given
    python benchmarks/bench_decode.py --seconds 10 --keep /tmp/bench-videos

Generated videos are H.264 (crf 21, x264 ``veryfast``) + AAC stereo at 44.1 kHz with moving,
textured, noisy content (a few Mb/s at 1280x720, like camera footage rather than a cartoon),
so the decoder does realistic work. Timings depend on the machine's load; on
a shared machine run it when idle, and compare numbers only from the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avsplit import io as media  # noqa: E402
from avsplit.errors import AvsplitError  # noqa: E402
from avsplit.scan import find_videos  # noqa: E402

DEFAULT_CONFIGS = [((320, 240), 24.0), ((1280, 720), 30.0)]


def make_video(path: Path, size: tuple[int, int], fps: float, seconds: float, seed: int = 0) -> Path:
    """A textured, moving test video with a stereo sound track."""
    w, h = size
    rng = np.random.default_rng(seed)
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    audio = np.stack([left, right]).astype(np.float32)
    texture = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w]
    with media.VideoWriter(path, fps=fps, width=w, height=h, audio=audio, audio_rate=rate, crf=21) as writer:
        for k in range(int(round(seconds * fps))):
            frame = np.roll(texture, shift=(k * 2, k * 3), axis=(0, 1)).copy()
            cx, cy = (w // 2 + int(w / 3 * np.sin(k / 15))), (h // 2 + int(h / 3 * np.cos(k / 20)))
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (min(w, h) // 6) ** 2
            frame[disc] = (255, 200 - k % 100, 40)
            # Sensor-like noise, so that the bit rate is that of camera footage, not of a cartoon.
            noise = rng.integers(-8, 9, (h, w, 1), dtype=np.int16)
            writer.write(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return path


def bench_one(path: Path, fps: float, short_side: int, sample_rate: int) -> dict:
    info = media.probe(path)
    t0 = time.perf_counter()
    n_frames = 0
    for _, frame in media.iter_frames(path, fps=fps, short_side=short_side):
        n_frames += 1
    t1 = time.perf_counter()
    audio = media.read_audio(path, sample_rate) if info.has_audio else np.zeros(0, np.float32)
    t2 = time.perf_counter()
    video_s, audio_s = t1 - t0, t2 - t1
    wall = video_s + audio_s
    return {
        "file": str(path),
        "config": f"{info.width}x{info.height}@{info.fps:.3g}",
        "codec": f"{info.video_codec}/{info.audio_codec}",
        "seconds": round(info.duration, 3),
        "wall_s": round(wall, 3),
        "rtf": round(info.duration / wall, 2),
        "frames": n_frames,
        "frames_per_s": round(n_frames / video_s, 1),
        "source_frames_per_s": round((info.num_frames or 0) / video_s, 1),
        "video_wall_s": round(video_s, 3),
        "video_rtf": round(info.duration / video_s, 2),
        "audio_wall_s": round(audio_s, 3),
        "audio_rtf": round(info.duration / audio_s, 1) if audio_s > 0 else None,
        "audio_samples": int(audio.size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", help="video files and/or directories (default: generated test videos)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame sampling rate (default 8)")
    parser.add_argument("--short-side", type=int, default=256, help="resize frames to this short side (default 256)")
    parser.add_argument("--sr", type=int, default=11025, help="audio rate (default 11025)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of generated videos (default 30)")
    parser.add_argument("--keep", type=Path, help="write generated videos here (reused if present) instead of a temp folder")
    parser.add_argument("--repeat", type=int, default=1, help="decode each file this many times, report the fastest")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="avsplit-bench-") as tmp:
        if args.inputs:
            try:
                videos = find_videos(args.inputs)
            except AvsplitError as exc:
                print(exc, file=sys.stderr)
                return 2
        else:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            videos = []
            for (w, h), fps in DEFAULT_CONFIGS:
                path = folder / f"bench_{w}x{h}_{fps:g}fps_{args.seconds:g}s.mp4"
                if not path.exists():
                    t = time.perf_counter()
                    make_video(path, (w, h), fps, args.seconds)
                    print(f"# generated {path.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
                videos.append(path)
        if not videos:
            print("no videos found", file=sys.stderr)
            return 2

        print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "fps": args.fps, "short_side": args.short_side, "sr": args.sr}))
        rows = []
        for path in videos:
            try:
                best = None
                for _ in range(max(1, args.repeat)):
                    row = bench_one(path, args.fps, args.short_side, args.sr)
                    if best is None or row["wall_s"] < best["wall_s"]:
                        best = row
            except AvsplitError as exc:
                print(json.dumps({"file": str(path), "error": str(exc)}))
                continue
            rows.append(best)
            print(json.dumps(best))

        by_config = defaultdict(list)
        for row in rows:
            by_config[row["config"]].append(row)
        for config, group in by_config.items():
            seconds = sum(r["seconds"] for r in group)
            wall = sum(r["wall_s"] for r in group)
            print(json.dumps({"summary": config, "files": len(group), "seconds": round(seconds, 2), "wall_s": round(wall, 3),
                              "rtf": round(seconds / wall, 2),
                              "frames_per_s": round(sum(r["frames"] for r in group) / sum(r["video_wall_s"] for r in group), 1)}))
        if rows:
            seconds = sum(r["seconds"] for r in rows)
            wall = sum(r["wall_s"] for r in rows)
            print(json.dumps({"summary": "all", "files": len(rows), "seconds": round(seconds, 2), "wall_s": round(wall, 3),
                              "rtf": round(seconds / wall, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
