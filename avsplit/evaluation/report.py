"""HTML reports of evaluated mixtures: audio players, spectrogram and mask images, the frames used."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avsplit import io as media
from avsplit.evaluation.breakdown import source_score
from avsplit.files import atomic_path, ensure_dir
from avsplit.localize.colours import apply_colormap


def spectrogram_image(values: np.ndarray, log: bool = True) -> Image.Image:
    """A ``(freq, time)`` array as an image with low frequencies at the bottom."""
    v = np.log(np.maximum(values, 1e-6)) if log else values
    lo, hi = np.percentile(v, 2), np.percentile(v, 99.5)
    norm = (v - lo) / max(hi - lo, 1e-8)
    return Image.fromarray(apply_colormap(norm[::-1], "magma"))


def write_item_report(root: Path, item, out: dict[str, Any], sample_rate: int) -> Path:
    """Write ``root/<item>/index.html`` with its audio, images and frames; update ``root/index.html``."""
    folder = ensure_dir(Path(root) / item.name)
    audio = {"mixture": out["mix"]}
    names = [Path(v).stem for v in item.videos]
    for k, name in enumerate(names):
        audio[f"estimate-{k + 1}"] = out["model"][k]
        audio[f"truth-{k + 1}"] = out["reference"][k]
    peak = max(1e-6, max(float(np.abs(a).max()) for a in audio.values()))
    for name, wave in audio.items():
        media.write_audio(folder / f"{name}.wav", wave / peak * 0.9, sample_rate)
    spectrogram_image(out["warped_mix"]).save(folder / "mixture-spectrogram.png")
    for k in range(len(names)):
        spectrogram_image(out["masks"][k], log=False).save(folder / f"mask-{k + 1}.png")
    if out.get("frames") is not None:
        for k, frame in enumerate(out["frames"]):
            Image.fromarray(frame).save(folder / f"frame-{k + 1}.png")
    rows = []
    for k, name in enumerate(names):
        sdr = source_score(item, "model", "sdr", k)
        rows.append(
            f"<tr><td>{k + 1}</td><td>{html.escape(name)}<br>{html.escape(str(item.categories[k]))}</td>"
            f"<td><img src='frame-{k + 1}.png' height=96></td>"
            f"<td>estimate<br><audio controls src='estimate-{k + 1}.wav'></audio><br>truth<br>"
            f"<audio controls src='truth-{k + 1}.wav'></audio></td>"
            f"<td><img src='mask-{k + 1}.png' height=128></td><td>{'' if sdr is None else f'{sdr:.2f} dB'}</td></tr>"
        )
    scores = "".join(
        f"<tr><td>{m}</td>" + "".join(f"<td>{v:.2f}</td>" for v in s.values()) + "</tr>" for m, s in item.scores.items()
    )
    page = f"""<!doctype html><meta charset="utf-8"><title>{html.escape(item.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}</style>
<h1>{html.escape(item.name)}</h1>
<p>mixture<br><audio controls src="mixture.wav"></audio><br><img src="mixture-spectrogram.png" height=160>
<br><small>log-frequency magnitude (low frequencies at the bottom); sounds are normalised to the same peak</small></p>
<table><tr><th>#</th><th>video</th><th>frame</th><th>audio</th><th>predicted mask</th><th>SDR</th></tr>{''.join(rows)}</table>
<h2>Scores (mean over sources)</h2><table><tr><th>method</th><th>SDR</th><th>SIR</th><th>SAR</th><th>NSDR</th></tr>{scores}</table>
"""
    with atomic_path(folder / "index.html") as tmp:
        tmp.write_text(page)
    _write_index(Path(root))
    return folder / "index.html"


def _write_index(root: Path) -> None:
    links = sorted(p.parent.name for p in root.glob("*/index.html"))
    body = "".join(f"<li><a href='{html.escape(n)}/index.html'>{html.escape(n)}</a></li>" for n in links)
    with atomic_path(root / "index.html") as tmp:
        tmp.write_text(f"<!doctype html><meta charset='utf-8'><title>avsplit report</title><h1>Mixtures</h1><ul>{body}</ul>")
