"""Full-band stems against today's model-rate stems, scored against the clean sources.

    python benchmarks/fullband_sdr.py [DATA] [--duets 6] [--rate 48000] [--seed 9101] [--weights NAME|PATH]
                                      [--soundfont SF2] [--rules octave,edge] [--json FILE]

DATA: a folder of duets with truth as ``avsplit synth`` writes them (``DATA/duets/*.mp4``); by
default ``--duets`` 8-second duets are rendered at ``--rate`` into a temporary folder
(``avsplit synth OUT --duets N --solos 0 --sr RATE --seed SEED``). Each duet is separated into its
two sources (``separate --sources 2``, mono):

- ``model-rate``: today's output, at the model's rate (``--sr`` the model's rate), upsampled to the
  full rate by FFmpeg's resampler for the full-rate scores;
- ``fullband-<rule>``: the default output (the model's masks on the original's STFT at its own
  rate), for each extension rule above the model's band (``avsplit.dsp.fullband``).

Scores (BSS Eval v3, ``avsplit.evaluation.bss.bss_eval``, the whole 8 s, mean over the two sources):
``full`` at the full rate; ``band`` at the model's rate (the sources and full-band estimates
resampled down by FFmpeg); ``high``: sources and estimates high-passed at 5 kHz (8th-order
Butterworth, zero phase) at the full rate, and ``above`` the same at 6 kHz (above the model's
band and its resampler's transition, where today's output is silent): they judge what the
extension adds (duets whose sources are silent up there are left out of a column: ``n_high``). Prints one JSON line per
duet and method, then a Markdown table of the means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

#: High-pass cutoffs (Hz) of the ``high`` and ``above`` columns.
HIGH_PASS_HZ = 5000.0
ABOVE_HZ = 6000.0


def high_pass(x: np.ndarray, rate: int, cutoff: float = HIGH_PASS_HZ) -> np.ndarray:
    """``(..., samples)`` high-passed at ``cutoff`` Hz (8th-order Butterworth, forward-backward)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff, btype="highpass", fs=rate, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float | None:
    """Mean SDR over sources ``(N, S)``; None when fewer than two references sound."""
    from avsplit.evaluation.bss import bss_eval

    n = min(reference.shape[1], estimate.shape[1])
    scores = bss_eval(reference[:, :n], estimate[:, :n])
    return float(np.mean(scores.sdr)) if scores.valid else None


def separate_one(engine, video: Path, rate: int | None, rule: str) -> np.ndarray:
    """The two sources of ``video`` as ``separate`` makes them, mono (in memory): ``(2, samples)``."""
    from avsplit.inference import RegionSpec, WindowStream, separate_stream

    engine.extension = rule
    stream = WindowStream(video, engine.model, 0.25, out_rate=rate, mono=True)
    return separate_stream(engine, stream, RegionSpec(num_sources=2))[0].sources[:2, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", help="folder with duets/ and their truth (default: rendered here)")
    parser.add_argument("--duets", type=int, default=6)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--seed", type=int, default=9101)
    parser.add_argument("--soundfont", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--rules", default="octave,edge")
    parser.add_argument("--json", default=None, help="write the per-duet rows and the means here")
    args = parser.parse_args()

    from avsplit import api
    from avsplit import io as media
    from avsplit.dsp.resample import resample
    from avsplit.inference import SeparationEngine

    model, _, weights = api.load_model(args.weights, "cpu")
    engine = SeparationEngine(model, next(model.parameters()).device)
    model_rate = model.config.audio.sample_rate
    rules = [r for r in args.rules.split(",") if r]
    rows = []
    with tempfile.TemporaryDirectory(prefix="avsplit-fullband-") as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "data"
        if not args.data:
            from avsplit.synth import generate_dataset

            generate_dataset(data, solos=0, duets=args.duets, seconds=8, sample_rate=args.rate, seed=args.seed,
                             soundfont=args.soundfont)
        for video in sorted((data / "duets").glob("*.mp4"))[: args.duets]:
            truth = json.loads(video.with_name(f"{video.stem}.truth.json").read_text())
            waves = [media.read_audio_file(video.with_name(s["audio"])) for s in truth["sources"]]
            rate = waves[0][1]
            refs = np.stack([w.mean(0) for w, _ in waves]).astype(np.float64)
            refs_band = np.stack([resample(r.astype(np.float32), rate, model_rate) for r in refs])
            refs_high = high_pass(refs, rate)
            refs_above = high_pass(refs, rate, ABOVE_HZ)
            kinds = "+".join(s.get("category") or "?" for s in truth["sources"])
            outputs = {"model-rate": separate_one(engine, video, model_rate, rules[0] if rules else "octave")}
            for rule in rules:
                outputs[f"fullband-{rule}"] = separate_one(engine, video, None, rule)
            for method, est in outputs.items():
                if method == "model-rate":
                    est_full, est_band = np.stack([resample(e, model_rate, rate) for e in est]), est
                else:
                    est_full, est_band = est, np.stack([resample(e, rate, model_rate) for e in est])
                row = {"duet": video.stem, "kinds": kinds, "method": method, "rate": rate,
                       "full": sdr(refs, est_full), "band": sdr(refs_band, est_band),
                       "high": sdr(refs_high, high_pass(est_full, rate)),
                       "above": sdr(refs_above, high_pass(est_full, rate, ABOVE_HZ))}
                rows.append(row)
                print(json.dumps(row), flush=True)
    means = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        means[method] = {k: float(np.mean([r[k] for r in mine if r[k] is not None])) if any(r[k] is not None for r in mine)
                         else None for k in ("full", "band", "high", "above")}
        means[method]["n"] = len(mine)
        means[method]["n_high"] = sum(r["high"] is not None for r in mine)
        means[method]["n_above"] = sum(r["above"] is not None for r in mine)
    print(f"\nweights {weights}; {len(rows) // max(1, len(means))} duets at {rows[0]['rate'] if rows else '?'} Hz, "
          f"SDR in dB (mean over duets)\n")
    print("| output | full-rate SDR | band-limited SDR (model rate) | full - band | > 5 kHz SDR | > 6 kHz SDR "
          "| n (> 5 kHz, > 6 kHz) |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda v: "--" if v is None else f"{v:.2f}"  # noqa: E731
    for method, m in means.items():
        diff = None if m["full"] is None or m["band"] is None else m["full"] - m["band"]
        print(f"| {method} | {fmt(m['full'])} | {fmt(m['band'])} | {fmt(diff)} | {fmt(m['high'])} | {fmt(m['above'])} "
              f"| {m['n']} ({m['n_high']}, {m['n_above']}) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"weights": str(weights), "rows": rows, "means": means}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
