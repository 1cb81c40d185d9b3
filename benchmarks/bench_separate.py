"""`separate` throughput and memory.

    python benchmarks/bench_separate.py [VIDEO_DIR] [--weights NAME|PATH] [--device cpu] [--long-minutes 30]
                                        [--long-rate 48000] [--long-channels 2] [--long-only]

Prints JSON lines:
- ``separate``: real-time factor (seconds of video per second of wall time) of `api.separate` over
  the directory (default: 8 synthetic 8-second duets and solos generated into a temporary folder);
- ``decode``: real-time factor of decoding the same inputs the way `separate` does (audio windows
  and the frames inside them, no model) -- the pipeline's floor; and their ratio;
- ``long``: peak resident memory (max RSS of the child process that runs it) and CPU time (user + system;
  ``rtf_per_cpu_s``: seconds of video per CPU second, a speed that holds on a shared machine) of
  `separate` on one long video (``--long-minutes``, default 30; its sound at ``--long-rate`` Hz with
  ``--long-channels``, default 48000 and 2, so the tracks are made at 48 kHz stereo); memory must
  stay bounded whatever the length.
  ``--long-only`` skips the short clips.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def media_seconds(paths) -> float:
    from avsplit import io as media

    return sum(media.probe(p).duration for p in paths)


def decode_only(paths, model) -> float:
    from avsplit.inference import WindowStream

    t0 = time.perf_counter()
    for p in paths:
        stream = WindowStream(Path(p), model, 0.25)
        for _ in zip(stream.iterate(), stream.original_in_order()):  # the model's input and the original sound
            pass
    return time.perf_counter() - t0


def make_long_video(path: Path, minutes: float, rate: int = 22050, channels: int = 1) -> None:
    """A long 320x240 8 fps video with a noisy tone (cheap to encode); in stereo the right channel's
    tone is a fifth higher."""
    from avsplit import io as media

    fps = 8
    seconds = minutes * 60
    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    audio = np.empty((channels, n), np.float32)
    for c in range(channels):
        for a in range(0, n, rate * 60):  # a minute at a time, to keep the parent's memory down
            t = np.arange(a, min(n, a + rate * 60)) / rate
            tone = 0.3 * np.sin(2 * np.pi * 330 * 1.5**c * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
            audio[c, a : a + t.shape[0]] = tone + 0.01 * rng.standard_normal(t.shape[0])
    audio = audio[0] if channels == 1 else audio
    with media.VideoWriter(path, fps=fps, width=320, height=240, audio=audio, audio_rate=rate, preset="ultrafast") as w:
        base = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
        for k in range(int(seconds * fps)):
            frame = base.copy()
            y = 100 + int(20 * np.sin(k / 5))
            frame[y : y + 40, 140:180] = 255
            w.write(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="?", help="folder of videos (default: generated synthetic clips)")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--long-minutes", type=float, default=30.0, help="0 to skip the memory run")
    parser.add_argument("--long-rate", type=int, default=48000, help="sample rate of the long video's sound")
    parser.add_argument("--long-channels", type=int, default=2, choices=(1, 2))
    parser.add_argument("--long-only", action="store_true", help="only the long-video run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # the memory run, in its own process
        from avsplit import api

        api.separate([args.child], Path(args.child).parent / "out", weights=args.weights, device=args.device,
                     sources=2, overwrite=True)
        # VmHWM is this address space's peak; ru_maxrss would include the forking parent's peak.
        hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"peak_rss_mb": hwm_kb / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}))
        return

    from avsplit import api
    from avsplit.scan import find_videos

    with tempfile.TemporaryDirectory(prefix="avsplit-bench-") as tmp:
        tmp = Path(tmp)
        if args.long_only:
            videos = []
        elif args.videos:
            videos = find_videos([args.videos])
        else:
            from avsplit.synth import generate_dataset

            generate_dataset(tmp / "data", solos=4, duets=4, seconds=8, seed=123, jobs=1)
            videos = sorted((tmp / "data").rglob("*.mp4"))
        if videos:
            seconds = media_seconds(videos)
            model, _, path = api.load_model(args.weights, args.device)
            decode_s = decode_only(videos, model)
            t0 = time.perf_counter()
            api.separate(videos, tmp / "out", weights=args.weights, device=args.device, overwrite=True)
            sep_s = time.perf_counter() - t0
            print(json.dumps({"bench": "separate", "weights": str(path), "videos": len(videos), "media_s": round(seconds, 1),
                              "wall_s": round(sep_s, 2), "rtf": round(seconds / sep_s, 2)}))
            print(json.dumps({"bench": "decode", "wall_s": round(decode_s, 2), "rtf": round(seconds / decode_s, 2),
                              "separate_over_decode": round(decode_s / sep_s, 3)}))
        if args.long_minutes > 0:
            long_path = tmp / "long" / "long.mp4"
            make_long_video(long_path, args.long_minutes, args.long_rate, args.long_channels)
            t0 = time.perf_counter()
            cmd = [sys.executable, __file__, "--child", str(long_path), "--device", args.device]
            if args.weights:
                cmd += ["--weights", args.weights]
            result = subprocess.run(cmd, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            child = json.loads(result.stdout.strip().splitlines()[-1])
            peak_mb = child["peak_rss_mb"]
            print(json.dumps({"bench": "long", "minutes": args.long_minutes, "rate": args.long_rate,
                              "channels": args.long_channels, "wall_s": round(wall, 1),
                              "cpu_s": round(child["cpu_s"], 1),
                              "rtf_per_cpu_s": round(args.long_minutes * 60 / child["cpu_s"], 2),
                              "rtf": round(args.long_minutes * 60 / wall, 2), "peak_rss_mb": round(peak_mb, 1)}))


if __name__ == "__main__":
    main()
