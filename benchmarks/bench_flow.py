"""Preprocessing throughput of the motion network's input: optical flow, then dense trajectories.

The way the preprocessing cache works: flow between consecutive frames at the decode size
(``--size``, default 170x128, i.e. short side 128 at 4:3), downsampled by 2 (2x2 area mean, vectors
halved), then :func:`avsplit.dsp.trajectories.trajectory_field` on windows of ``--window`` (48) flow
steps, the windows batched together. Frames are synthetic (a panning smooth texture with an
object moving on it) unless ``--video`` gives a file to decode (decoding is not timed).

Prints one JSON line: ``flow_frames_per_s`` (flow fields per second), ``trajectory_frames_per_s``
(flow steps turned into trajectory fields per second, downsampling included),
``total_frames_per_s`` (both), the sizes, backend, preset and device. Each stage is timed
``--repeats`` times after a warm-up and the best time is kept (the machine may be shared).

    python benchmarks/bench_flow.py
    python benchmarks/bench_flow.py --backend dis --preset ultrafast --frames 193
    python benchmarks/bench_flow.py --backend raft --weights default --device cuda --size 340x256
    python benchmarks/bench_flow.py --video clip.mp4 --fps 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from avsplit.dsp.flow import BACKENDS, DIS_PRESETS, make_flow  # noqa: E402
from avsplit.dsp.trajectories import trajectory_field  # noqa: E402


def synthetic_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """``n`` RGB uint8 frames: a smooth random texture panning 2 px/frame right and 1 px/frame down,
    with a differently textured disc circling over it."""
    import cv2

    rng = np.random.default_rng(seed)
    pad_x, pad_y = 2 * n + 8, n + 8

    def texture(h, w, sigma):
        noise = rng.standard_normal((h, w, 3)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma)
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        return (smooth * 255).astype(np.uint8)

    background = texture(height + pad_y, width + pad_x, 2.0)
    spots = texture(height, width, 1.0)
    yy, xx = np.mgrid[0:height, 0:width]
    radius = min(width, height) // 6
    frames = np.empty((n, height, width, 3), np.uint8)
    for k in range(n):
        x0, y0 = pad_x - 2 * k, pad_y - k
        frame = background[y0:y0 + height, x0:x0 + width].copy()
        cx = width / 2 + width / 3 * np.sin(k / 9)
        cy = height / 2 + height / 4 * np.cos(k / 13)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
        frame[disc] = np.roll(spots, (int(cy), int(cx)), axis=(0, 1))[disc]
        frames[k] = frame
    return frames


def video_frames(path: str, n: int, width: int | None, height: int | None, fps: float | None) -> np.ndarray:
    from avsplit import io as media

    size = (width, height) if width else None
    frames = []
    for _, frame in media.iter_frames(path, fps=fps, size=size, short_side=None if size else 128):
        frames.append(frame)
        if len(frames) >= n:
            break
    if len(frames) < 2:
        raise SystemExit(f"{path}: fewer than 2 frames decoded")
    return np.stack(frames)


def downsample_flow(flow: np.ndarray, factor: int = 2) -> np.ndarray:
    """``(T, H, W, 2)`` -> ``(T, H//f, W//f, 2)``: mean over ``f x f`` blocks, vectors divided by ``f``
    (displacements in pixels of the smaller picture)."""
    t, h, w, _ = flow.shape
    h2, w2 = h // factor, w // factor
    blocks = flow[:, :h2 * factor, :w2 * factor].reshape(t, h2, factor, w2, factor, 2)
    return blocks.mean(axis=(2, 4)) / factor


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, repeats: int, device: torch.device):
    result, best = None, float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, int, int]:
    """The command line, checked: ``(args, width, height)``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="dis")
    parser.add_argument("--preset", choices=DIS_PRESETS, default="medium", help="DIS preset (backend dis)")
    parser.add_argument("--model", choices=("small", "large"), default="small", help="RAFT model (backend raft)")
    parser.add_argument("--weights", default="default", help="RAFT weights: default (torchvision's; downloads once) or a PATH")
    parser.add_argument("--num-flow-updates", type=int, default=12, help="RAFT refinement iterations")
    parser.add_argument("--frames", type=int, default=145, help="frames (flow steps = frames - 1)")
    parser.add_argument("--size", default="170x128", help="WxH of the frames the flow is computed on")
    parser.add_argument("--window", type=int, default=48, help="flow steps per trajectory window")
    parser.add_argument("--device", default=None, help="torch device for RAFT and trajectories (default: cuda if available)")
    parser.add_argument("--video", default=None, help="decode this file instead of synthetic frames")
    parser.add_argument("--fps", type=float, default=None, help="decode rate for --video (default: every frame)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WxH, got {args.size!r}")
    if args.frames < args.window + 1:
        parser.error(f"--frames must be at least --window + 1 = {args.window + 1}")
    return args, width, height


def main(argv: list[str] | None = None) -> int:
    args, width, height = _arguments(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    if args.video:
        frames = video_frames(args.video, args.frames, width, height, args.fps)
    else:
        frames = synthetic_frames(args.frames, width, height)
    n, height, width = frames.shape[:3]
    steps = n - 1

    if args.backend == "dis":
        flow_fn = make_flow("dis", preset=args.preset)
    else:
        flow_fn = make_flow("raft", model=args.model, weights=args.weights, device=str(device),
                            num_flow_updates=args.num_flow_updates)

    # warm-up (OpenCV / torch allocations, cuDNN autotuning)
    flow_fn.sequence(frames[:3])
    warm = torch.zeros(1, min(args.window, 4), 2, height // 2, width // 2, device=device)
    trajectory_field(warm)

    def compute_flow():
        if hasattr(flow_fn, "clear_memo"):  # DIS remembers recent pairs: time the computation, not the memo
            flow_fn.clear_memo()
        return flow_fn.sequence(frames)

    flow, flow_s = best_time(compute_flow, args.repeats, device)

    windows = steps // args.window
    used = windows * args.window

    def trajectories():
        small = downsample_flow(flow[:used])  # (used, h, w, 2)
        h2, w2 = small.shape[1:3]
        tensor = torch.from_numpy(np.ascontiguousarray(small)).to(device)
        tensor = tensor.reshape(windows, args.window, h2, w2, 2).permute(0, 1, 4, 2, 3)  # (B, steps, 2, H, W)
        return trajectory_field(tensor)

    field, traj_s = best_time(trajectories, args.repeats, device)
    assert field.shape[:3] == (windows, 4, args.window), field.shape

    flow_fps = steps / flow_s
    traj_fps = used / traj_s
    total_fps = 1.0 / (1.0 / flow_fps + 1.0 / traj_fps)  # per flow step, both stages
    record = {
        "backend": args.backend,
        "preset": args.preset if args.backend == "dis" else None,
        "model": args.model if args.backend == "raft" else None,
        "num_flow_updates": args.num_flow_updates if args.backend == "raft" else None,
        "device": str(device),
        "source": args.video or "synthetic",
        "frames": n,
        "flow_size": [width, height],
        "trajectory_size": [width // 2, height // 2],
        "window": args.window,
        "windows": windows,
        "flow_s": round(flow_s, 4),
        "trajectory_s": round(traj_s, 4),
        "flow_frames_per_s": round(flow_fps, 1),
        "trajectory_frames_per_s": round(traj_fps, 1),
        "total_frames_per_s": round(total_fps, 1),
        "timing": f"best of {args.repeats}",
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
