"""Training-step throughput: one full step (forward, loss, backward, optimizer) on synthetic tensors.

    python benchmarks/bench_train.py --preset sop --batch 4 --device cpu

Prints one JSON line: preset, batch, device, amp, threads, step_s (median of the timed steps),
clips_per_s (= batch / step_s). Data loading is excluded: it is measured by bench_decode.py and
is cheap once the preprocessing cache is built.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from avsplit.models import build_model, preset, use_channels_last
from avsplit.runtime import autocast_for, pick_device
from avsplit.training import TRAIN_PRESETS, MixSeparateLoss, TrainConfig, make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sop")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--amp", default="auto", help="auto, bf16 or off")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-channels-last", action="store_true",
                        help="keep convolution weights contiguous (training stores them channels-last)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cfg = preset(args.preset)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    if not args.no_channels_last:
        use_channels_last(model)
    loss_fn = MixSeparateLoss(model)
    tcfg = TRAIN_PRESETS.get(args.preset, TrainConfig())
    optimizer = make_optimizer(model, tcfg)
    v = cfg.video
    audio = (torch.randn(args.batch, cfg.num_mix, cfg.audio.clip_samples) * 0.1).to(device)
    frames = torch.randn(args.batch, cfg.num_mix, v.num_frames, 3, v.crop_size, v.crop_size).to(device)
    times = []
    for i in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast_for(device, args.amp):
            loss = loss_fn(audio, frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    amp_on = not isinstance(autocast_for(device, args.amp), type(__import__("contextlib").nullcontext()))
    print(json.dumps({"preset": args.preset, "batch": args.batch, "device": str(device), "amp_bf16": amp_on,
                      "channels_last": not args.no_channels_last,
                      "threads": torch.get_num_threads(), "step_s": round(step, 3),
                      "clips_per_s": round(args.batch / step, 3), "steps_timed": len(times)}))


if __name__ == "__main__":
    main()
