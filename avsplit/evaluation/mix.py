"""The ``mix`` protocol: mixtures of solo videos drawn deterministically, separated with each solo's
own frames, with the mixture and oracle-mask baselines at the model's STFT."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avsplit import io as media
from avsplit.dsp.chunking import centred_times
from avsplit.dsp.transforms import ideal_binary_mask, ideal_ratio_mask
from avsplit.evaluation.scores import WINDOW_TRIES
from avsplit.inference import Heard, SeparationEngine
from avsplit.localize.sounding import sounding_box
from avsplit.scan import VideoItem


def draw_mixtures(items: Sequence[VideoItem], pairs: int, num_mix: int, seed: int, same_category: bool) -> list[list[int]]:
    """``pairs`` deterministic groups of ``num_mix`` distinct solos (different categories unless
    ``same_category`` or the categories are unknown)."""
    rng = np.random.default_rng(seed)
    groups: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    n = len(items)
    for _ in range(pairs * 50):
        if len(groups) == pairs:
            break
        g = sorted(int(i) for i in rng.choice(n, size=num_mix, replace=False))
        cats = [items[i].category for i in g]
        if not same_category and None not in cats and len(set(cats)) < num_mix:
            continue
        if tuple(g) in seen and len(seen) < math.comb(n, num_mix):
            continue
        seen.add(tuple(g))
        groups.append(g)
    return groups


class Evaluator:
    """The ``mix`` protocol on a :class:`~avsplit.inference.SeparationEngine`."""

    def __init__(self, engine: SeparationEngine, zoom: bool = False):
        self.engine = engine
        self.cfg = engine.model.config
        self.zoom = zoom
        """Each solo seen closer: its frames zoomed onto where its motion follows its sound
        (:func:`avsplit.localize.sounding.sounding_box`), as ``separate --mix --zoom`` does."""
        self._boxes: dict[Path, tuple[list[float] | None, tuple[int, int]]] = {}
        """Each zoomed solo's sounding box and video size ``(W, H)``, found once."""

    # ------------------------------------------------------------------ mix protocol
    def _solo_clip(self, path: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A sounding clip of a solo: audio ``(S,)`` and frames ``(F, H, W, 3)`` from inside its window."""
        info = media.probe(path).require_video().require_audio()
        rate, size = self.cfg.audio.sample_rate, self.cfg.audio.clip_samples
        clip_s = size / rate
        span = max(0.0, info.duration - clip_s)
        best = None
        for _ in range(WINDOW_TRIES if span > 0 else 1):
            start = float(rng.uniform(0, span)) if span > 0 else 0.0
            wave = media.read_audio(path, rate, start=start, duration=clip_s)
            wave = np.pad(wave, (0, max(0, size - wave.shape[0])))[:size]
            rms = float(np.sqrt(np.mean(wave**2)))
            if best is None or rms > best[0]:
                best = (rms, start, wave)
            if rms > 0.01:
                break
        _, start, wave = best
        n = self.cfg.frames_per_window
        real = min(clip_s, info.duration - start)
        times = centred_times(start, real, n)
        frames = media.read_frames(path, list(times), short_side=self.cfg.video.short_side)
        return wave.astype(np.float32), frames

    @torch.no_grad()
    def mixture(self, paths: Sequence[Path], seed: int) -> dict[str, np.ndarray]:
        """Mix sounding clips of the solos ``paths`` and separate them back, each with its own frames:
        the references, the mixture, the model's estimates and the baselines (arrays by name)."""
        rng = np.random.default_rng(seed)
        clips = [self._solo_clip(p, rng) for p in paths]
        refs = np.stack([c[0] for c in clips])  # (N, S)
        mix = refs.sum(0)
        engine = self.engine
        heard = engine.hear(mix[None])
        vectors = torch.cat([self._vectors(path, frames) for path, (_, frames) in zip(paths, clips)], dim=1)  # (1, N, [steps,] K)
        masks = engine.masks(heard, vectors)
        est = engine.resynthesize(heard, masks, mix.shape[0])[0]
        return {"reference": refs, "mix": mix, "model": est, "mixture": np.stack([mix] * len(paths)),
                **self._oracles(refs, heard),
                "frames": np.stack([c[1][len(c[1]) // 2] for c in clips]) if all(c[1].shape == clips[0][1].shape for c in clips) else None,
                "masks": masks[0].cpu().numpy(), "warped_mix": heard.warped[0, 0].cpu().numpy()}

    def _vectors(self, path: Path, frames: np.ndarray) -> torch.Tensor:
        """A solo's visual vector ``(1, 1, [steps,] K)`` from its frames ``(F, H, W, 3)``: the whole picture,
        or with :attr:`zoom` the part around its sounding box (the whole picture when it has none)."""
        if self.zoom and path not in self._boxes:
            info = media.probe(path)
            self._boxes[path] = (sounding_box(path, info=info), (info.width, info.height))
        box, video_size = self._boxes.get(path, (None, None))
        if box is None:
            return self.engine.vectors(self.engine.see(frames[None]))
        return self.engine.zoomed_vectors(frames[None], [box], video_size)

    def _oracles(self, refs: np.ndarray, heard: Heard) -> dict[str, np.ndarray]:
        """The oracle ideal binary and ratio masks of the references ``(N, S)`` in the mixture ``heard``,
        at the model's (linear-frequency) STFT: ``(N, S)`` each."""
        spectrogram = self.engine.model.spectrogram
        src_spec = spectrogram.stft(torch.from_numpy(refs).to(self.engine.device))  # (N, F, T)
        mix_mag = heard.spec.abs()  # (1, F, T)
        ibm = ideal_binary_mask(src_spec.abs()[None], mix_mag)[0]
        irm = ideal_ratio_mask(src_spec.abs()[None], mix_mag)[0]
        length = refs.shape[1]
        return {"oracle_ibm": spectrogram.istft(ibm * heard.spec, length).cpu().numpy(),
                "oracle_irm": spectrogram.istft(irm * heard.spec, length).cpu().numpy()}
