"""One-shot check (and measurement) of everything that needs a GPU. A few minutes on a GPU.

    python benchmarks/gpu_check.py                       # on the GPU (paper presets sop / som)
    python benchmarks/gpu_check.py --device cpu --tiny   # the same checks on CPU with tiny presets (CI)

Checks, one JSON line each (``"ok": true/false``; a check that cannot run here says ``"skipped"``):

- ``env``: torch, CUDA and bf16 present (on GPU); the device's name;
- ``train-sop``, ``train-som``: a few training steps of each preset on synthetic videos through
  ``api.train``: clips/s (as training logs it, first steps included), peak GPU memory;
- ``torchrun``: ``torchrun --nproc_per_node 1`` of ``avsplit train`` for a few steps (NCCL on GPU,
  gloo on CPU), checked through its last checkpoint;
- ``separate``: ``api.separate`` over the folder of synthetic videos: real-time factor, and its ratio
  to decode-only throughput of the same files (``bench_separate.decode_only``: the windows the way
  ``separate`` decodes them; ``bench_decode.bench_one``: plain decoding);
- ``localize``: ``api.localize --method model`` over the duets: real-time factor;
- ``raft``: torchvision's RAFT flow on the device, if its weights are in the torch hub cache.

Then a final line ``{"check": "summary", "pass": ...}``; the exit status is 0 when every check
passed. With ``--tiny`` (the default when CUDA is absent) the presets are ``tiny`` / ``tiny-motion``
and everything is small: a test of the suite runs it so that it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS: list[dict] = []


def report(check: str, ok: bool, **fields) -> dict:
    line = {"check": check, "ok": bool(ok), **fields}
    RESULTS.append(line)
    print(json.dumps(line), flush=True)
    return line


def run_check(name: str, fn, *args) -> None:
    """Run one check; an exception is a failed check with its one-line reason, and the script goes on."""
    t0 = time.perf_counter()
    try:
        fields = fn(*args)
    except Exception as exc:  # a check that crashes is a failure to report, not the end of the script
        tail = traceback.format_exc().strip().splitlines()[-3:]
        report(name, False, error=f"{type(exc).__name__}: {exc}", where=" | ".join(tail), wall_s=round(time.perf_counter() - t0, 2))
        return
    ok = fields.pop("ok", True)
    report(name, ok, **fields, wall_s=round(time.perf_counter() - t0, 2))


def _cuda_peak_mb(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def check_env(device, tiny: bool) -> dict:
    import torch

    fields = {"torch": torch.__version__, "device": str(device), "tiny": tiny, "cuda": torch.cuda.is_available()}
    if device.type != "cuda":
        return {**fields, "ok": True, "note": "CPU run: CUDA and bf16 are not required"}
    fields.update(name=torch.cuda.get_device_name(device), capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                  bf16=torch.cuda.is_bf16_supported(), cuda_version=torch.version.cuda,
                  nccl=torch.distributed.is_nccl_available(), memory_gb=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return {**fields, "ok": bool(fields["bf16"] and fields["nccl"])}


def make_videos(folder: Path, tiny: bool) -> dict:
    from avsplit.synth import generate_dataset

    if tiny:
        summary = generate_dataset(folder, solos=6, duets=2, seconds=3.0, size=(160, 120), fps=12, seed=7, jobs=1)
    else:
        summary = generate_dataset(folder, solos=16, duets=4, seconds=8.0, size=(320, 240), fps=24, seed=7, jobs=4)
    videos = sorted(folder.rglob("*.mp4"))
    return {"videos": len(videos), "ok": not summary.failed and len(videos) > 0}


def check_train(preset: str, data: Path, work: Path, device, steps: int, batch: int | None) -> dict:
    import torch

    from avsplit import api

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    overrides = {"steps": steps, "val_every": steps, "checkpoint_every": steps, "val_mixtures": 2, "log_every": 1}
    if batch:
        overrides["batch_size"] = batch
    summary = api.train(data / "solos", work / f"run-{preset}", preset=preset, train_overrides=overrides,
                        cache_dir=work / "cache", device=str(device), jobs=2)
    return {"preset": preset, "steps": summary.steps, "clips_per_s": round(summary.clips_per_s, 3),
            "train_s": round(summary.seconds, 2), "peak_gpu_mb": _cuda_peak_mb(device), "last_loss": round(summary.losses[-1], 4),
            "ok": summary.steps == steps and all(map(_finite, summary.losses))}


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_torchrun(preset: str, data: Path, work: Path, device, steps: int) -> dict:
    from avsplit.models.checkpoint import load_checkpoint

    run = work / "run-torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "avsplit", "train", "--data", str(data / "solos"), "-o", str(run),
           "--preset", preset, "--steps", str(steps), "--val-every", str(steps), "--cache", str(work / "cache"),
           "-d", str(device), "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if result.returncode != 0:
        return {"backend": backend, "ok": False, "error": result.stderr.strip().splitlines()[-1:] or ["no output"]}
    _, meta = load_checkpoint(run / "last.safetensors")
    return {"backend": backend, "preset": preset, "steps": meta["training"]["step"], "ok": meta["training"]["step"] == steps}


def tiny_motion_weights(work: Path) -> str:
    """An untrained (seeded) tiny-motion checkpoint: runs separate/localize in seconds on CPU."""
    import torch

    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model, preset

    torch.manual_seed(0)
    return str(save_checkpoint(work / "tiny-motion.safetensors", build_model(preset("tiny-motion")).eval()))


def check_separate(data: Path, work: Path, device, weights: str | None) -> dict:
    import bench_decode
    import bench_separate

    from avsplit import api

    videos = sorted(data.rglob("*.mp4"))
    seconds = bench_separate.media_seconds(videos)
    model, _, path = api.load_model(weights, str(device))
    decode_s = bench_separate.decode_only(videos, model)
    plain_s = sum(bench_decode.bench_one(v, fps=model.config.video.fps, short_side=model.config.video.short_side,
                                         sample_rate=model.config.audio.sample_rate)["wall_s"] for v in videos)
    api.separate(videos, work / "warm-up", weights=weights, device=str(device))  # first call: kernels, caches
    t0 = time.perf_counter()
    summary = api.separate(videos, work / "separated", weights=weights, device=str(device), overwrite=True)
    sep_s = time.perf_counter() - t0
    return {"weights": str(path), "videos": len(videos), "media_s": round(seconds, 1), "rtf": round(seconds / sep_s, 2),
            "decode_rtf": round(seconds / decode_s, 2), "plain_decode_rtf": round(seconds / plain_s, 2),
            "separate_over_decode": round(decode_s / sep_s, 3), "peak_gpu_mb": _cuda_peak_mb(device),
            "ok": len(summary.done) == len(videos) and not summary.failed}


def check_localize(data: Path, work: Path, device, weights: str | None) -> dict:
    import bench_separate

    from avsplit import api

    videos = sorted((data / "duets").glob("*.mp4"))
    seconds = bench_separate.media_seconds(videos)
    t0 = time.perf_counter()
    summary = api.localize(videos, work / "localized", method="model", weights=weights, device=str(device), maps=True)
    wall = time.perf_counter() - t0
    return {"videos": len(videos), "rtf": round(seconds / wall, 2), "ok": len(summary.done) == len(videos) and not summary.failed}


def check_raft(data: Path, device) -> dict:
    import torch
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    from avsplit import io as media
    from avsplit.dsp.flow import RAFTFlow

    cached = {name: Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.DEFAULT.url).name
              for name, enum in (("large", Raft_Large_Weights), ("small", Raft_Small_Weights))}
    present = [name for name, path in cached.items() if path.is_file()]
    if not present:
        return {"skipped": True, "reason": f"no RAFT weights in {cached['small'].parent} (they download on first use)"}
    video = sorted((data / "duets").glob("*.mp4"))[0]
    frames = media.read_frames(video, [k / 8 for k in range(9)], size=(256, 128))
    flow = RAFTFlow(model=present[0], weights=cached[present[0]], device=str(device))
    flow.sequence(frames)  # warm-up
    t0 = time.perf_counter()
    fields = flow.sequence(frames)
    wall = time.perf_counter() - t0
    return {"model": present[0], "pairs": len(frames) - 1, "pairs_per_s": round((len(frames) - 1) / wall, 1),
            "ok": bool(torch.isfinite(torch.as_tensor(fields)).all())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    parser.add_argument("--tiny", action="store_true", help="tiny presets and small data (default when the device is a CPU)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per check (default: 20 on GPU, 2 tiny)")
    parser.add_argument("--batch", type=int, default=None, help="mixtures per training step (default: the preset's)")
    parser.add_argument("--weights", default=None, help="weights for separate/localize (default: the shipped model; tiny: an untrained tiny-motion)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)

    import torch

    from avsplit.runtime import pick_device

    device = pick_device(args.device)
    tiny = args.tiny or device.type != "cuda"
    steps = args.steps or (2 if tiny else 20)
    sop, som = ("tiny", "tiny-motion") if tiny else ("sop", "som")
    with tempfile.TemporaryDirectory(prefix="avsplit-gpu-check-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        run_check("env", check_env, device, tiny)
        run_check("synth", make_videos, data, tiny)
        if not RESULTS[-1]["ok"]:
            report("summary", False, failed=["synth"])
            return 1
        run_check(f"train-{sop}", check_train, sop, data, work, device, steps, args.batch)
        run_check(f"train-{som}", check_train, som, data, work, device, steps, args.batch)
        run_check("torchrun", check_torchrun, sop, data, work, device, steps)
        weights = args.weights or (tiny_motion_weights(work) if tiny else None)
        run_check("separate", check_separate, data, work, device, weights)
        run_check("localize", check_localize, data, work, device, weights)
        run_check("raft", check_raft, data, device)
    failed = [r["check"] for r in RESULTS if not r["ok"]]
    report("summary", not failed, failed=failed, **{"pass": not failed}, device=str(device), tiny=tiny,
           gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
