"""Dense optical flow between consecutive frames (motion measures built on it: :mod:`avsplit.dsp.motion`).

Backend ``dis``: OpenCV's DIS optical flow (Kroeger et al., "Fast optical flow using dense inverse
search", 2016) on grey frames; no weights, CPU, a few milliseconds per frame at the small sizes
used here. Backend ``raft``: torchvision's RAFT (Teed and Deng, 2020; ``small`` or ``large``) with
torchvision's official weights or a local state-dict file; GPU when there is one. Flow is a
float32 ``(H, W, 2)`` array of ``(dx, dy)`` pixel displacements that take a pixel of the earlier
frame to its place in the later one.

Both backends have ``flow(prev, next) -> (H, W, 2)`` and ``flow.sequence(frames) -> (T-1, H, W, 2)``
(the flow between each pair of consecutive frames of a ``(T, H, W[, 3])`` uint8 array).

Typical use (streaming; one frame held at a time)::

    for t, flow in iter_flow("clip.mp4", fps=12, short_side=128):
        ...

Used by ``localize --method onsets`` (:mod:`avsplit.localize.onsets`) and meant to be reused by the
motion network's preprocessing.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from avsplit import io as media
from avsplit.errors import CheckpointError, ConfigError

#: Frame pairs whose DIS flow :meth:`DISFlow.sequence` remembers (about 0.2 MB each at 170x128).
DIS_MEMO_PAIRS = 96
#: Threads that compute the pairs of one :meth:`DISFlow.sequence` call (each with its own DIS instance).
DIS_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
#: DIS presets by name (speed versus accuracy).
DIS_PRESETS = ("ultrafast", "fast", "medium")
#: Optical-flow backends (the ``flow_backend`` of a motion model's config).
BACKENDS = ("dis", "raft")
#: RAFT model sizes (``torchvision.models.optical_flow.raft_small`` / ``raft_large``).
RAFT_MODELS = ("small", "large")


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("optical flow needs OpenCV", fix="pip install opencv-python-headless") from exc
    return cv2


def to_grey(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` (or an already grey ``(H, W)``) -> grey uint8 ``(H, W)``."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
    return _cv2().cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), _cv2().COLOR_RGB2GRAY)


class DISFlow:
    """Dense flow with OpenCV's DIS: ``flow = DISFlow()(prev, next)``, ``(H, W, 2)`` float32.

    Frames may be RGB or grey uint8 of the same size. One instance keeps OpenCV's state, so use
    one per thread.
    """

    def __init__(self, preset: str = "medium"):
        if preset not in DIS_PRESETS:
            raise ConfigError(f"unknown DIS preset {preset!r}", fix=f"use one of {', '.join(DIS_PRESETS)}")
        cv2 = _cv2()
        ids = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self.preset = preset
        self._preset_id = ids[preset]
        self._dis = cv2.DISOpticalFlow_create(self._preset_id)
        self._pool: list = []  # more instances for the worker threads of :meth:`sequence`
        self._memo: dict[tuple, np.ndarray] = {}  # (key of prev, key of next) -> flow, oldest first

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        a, b = to_grey(prev), to_grey(nxt)
        if a.shape != b.shape:
            raise ValueError(f"frames differ in size: {a.shape} vs {b.shape}")
        flow = self._dis.calc(a, b, None)
        return np.asarray(flow, dtype=np.float32)

    def sequence(self, frames: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames of uint8 ``(T, H, W, 3)`` (or grey ``(T, H, W)``):
        float32 ``(T-1, H, W, 2)``; ``(0, H, W, 2)`` when there are fewer than two frames.

        A frame repeated (the same picture twice in a row) has exactly zero flow and is not
        computed; pairs seen recently (the overlap of consecutive separation windows) are reused
        from a small memo, keyed by the two pictures' contents. Both give exactly what computing
        them would.
        """
        frames = _check_frames(frames)
        t, h, w = frames.shape[:3]
        out = np.empty((max(t - 1, 0), h, w, 2), np.float32)
        greys = [to_grey(f) for f in frames]
        keys = [_picture_key(g) for g in greys]
        todo = []  # pairs to compute: index of the earlier frame
        for i in range(1, t):
            if keys[i] == keys[i - 1]:  # the same picture (the memo trusts the same digests)
                out[i - 1] = 0.0
            elif (known := self._memo.get((keys[i - 1], keys[i]))) is not None:
                out[i - 1] = known
            else:
                todo.append(i - 1)

        def compute(part: int) -> None:  # every len(engines)-th pair, with this thread's own DIS instance
            for i in todo[part :: len(engines)]:
                out[i] = engines[part].calc(greys[i], greys[i + 1], None)

        engines = self._engines(min(len(todo), DIS_THREADS))
        if len(engines) > 1:  # OpenCV releases the GIL, so pairs run in parallel; a new pool each call, so
            # a forked worker process never inherits dead threads
            with ThreadPoolExecutor(len(engines)) as pool:
                list(pool.map(compute, range(len(engines))))
        elif todo:
            compute(0)
        for i in todo:
            self._memo[(keys[i], keys[i + 1])] = out[i].copy()
            if len(self._memo) > DIS_MEMO_PAIRS:
                self._memo.pop(next(iter(self._memo)))
        return out

    def clear_memo(self) -> None:
        """Forget the remembered pairs (benchmarks time the computation itself)."""
        self._memo.clear()

    def _engines(self, count: int) -> list:
        """``count`` (at least 1) DIS instances with this one's settings, one per worker thread."""
        while len(self._pool) < count - 1:
            self._pool.append(_cv2().DISOpticalFlow_create(self._preset_id))
        return [self._dis] + self._pool[: max(count, 1) - 1]


def _picture_key(grey: np.ndarray) -> tuple:
    """A content key of a grey frame: its shape and a 128-bit digest of its pixels."""
    return grey.shape, hashlib.blake2b(grey.tobytes(), digest_size=16).digest()


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if not (frames.ndim == 3 or (frames.ndim == 4 and frames.shape[3] == 3)):
        raise ValueError(f"expected frames (T, H, W, 3) or (T, H, W), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def _load_state_dict(path: Path) -> dict:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file (``weights_only``)."""
    import torch

    if not path.is_file():
        raise CheckpointError("RAFT weights file not found", path=path,
                              fix='give the path of a RAFT state-dict file (.pth or .safetensors), or weights="default"')
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to read means the file is unusable
        kind = "safetensors" if path.suffix.lower() == ".safetensors" else "torch"
        raise CheckpointError(f"cannot read RAFT weights: not a readable {kind} state dict (corrupt, truncated, "
                              f"or holding objects other than tensors; {type(exc).__name__})", path=path,
                              fix="re-download or re-export the file as a state dict (.pth or .safetensors)") from exc
    # accept a checkpoint that wraps the state dict
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a RAFT state dict (expected a mapping of parameter names to tensors)", path=path,
                              fix="save the weights with torch.save(model.state_dict(), PATH)")
    # checkpoints saved from nn.DataParallel prefix every name with "module."
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


class RAFTFlow:
    """Dense flow with torchvision's RAFT: ``flow = RAFTFlow()(prev, next)``, ``(H, W, 2)`` float32.

    ``model``: ``small`` (default) or ``large``. ``weights``: ``"default"`` for torchvision's
    official weights (downloaded once into torch's cache), or the path of a local state-dict file
    (``.pth``/``.pt`` saved with ``torch.save(model.state_dict())``, or ``.safetensors``).
    ``device``: None picks CUDA when available, else CPU. ``num_flow_updates``: RAFT's refinement
    iterations (fewer is faster and coarser). ``batch_size``: frame pairs per forward pass in
    :meth:`sequence`.

    Frames are RGB (grey is replicated to three channels) uint8, scaled to ``[-1, 1]`` as RAFT
    expects. RAFT needs sides that are multiples of 8 (and at least ``8 * 2**levels`` so that its
    correlation pyramid fits), so frames are padded by replicating their edges and the flow is
    cropped back to the frame size.
    """

    def __init__(self, model: str = "small", weights: str | Path = "default", device: str | None = None,
                 num_flow_updates: int = 12, batch_size: int = 16):
        import torch
        from torchvision.models import optical_flow as tv_flow

        if model not in RAFT_MODELS:
            raise ConfigError(f"unknown RAFT model {model!r}", fix=f"use one of {', '.join(RAFT_MODELS)}")
        if int(num_flow_updates) < 1:
            raise ConfigError(f"num_flow_updates must be at least 1, got {num_flow_updates}", fix="use e.g. 12")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}", fix="use e.g. 16")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"unknown device {device!r}", fix="use cpu, cuda or cuda:N") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available", fix="use device='cpu'")

        build = tv_flow.raft_small if model == "small" else tv_flow.raft_large
        self.model_name = model
        self.num_flow_updates = int(num_flow_updates)
        self.batch_size = int(batch_size)
        if isinstance(weights, str) and weights == "default":
            enum = tv_flow.Raft_Small_Weights if model == "small" else tv_flow.Raft_Large_Weights
            try:
                net = build(weights=enum.DEFAULT, progress=False)
            except Exception as exc:  # network or cache failures
                raise ConfigError(f"cannot get torchvision's RAFT {model} weights ({type(exc).__name__})",
                                  fix="connect to the internet once so torchvision can cache them, "
                                      "or pass weights=PATH to a local state-dict file") from exc
            self.weights = "default"
        else:
            if not isinstance(weights, (str, Path)) or not str(weights):
                raise ConfigError(f"RAFT weights must be 'default' or a file path, got {weights!r}",
                                  fix='pass weights="default" or the path of a .pth/.safetensors state dict')
            path = Path(weights).expanduser()
            state = _load_state_dict(path)
            net = build(weights=None, progress=False)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                own = net.state_dict()
                missing = [k for k in own if k not in state]
                unexpected = [k for k in state if k not in own]
                shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
                detail = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(shape)} wrongly shaped parameters"
                          + (f", e.g. {(missing or unexpected or shape)[0]}" if (missing or unexpected or shape) else ""))
                raise CheckpointError(f"weights do not fit RAFT {model} ({detail})", path=path,
                                      fix=f"use weights saved from torchvision's raft_{model}, or set model to the one they were saved from") from exc
            self.weights = str(path)
        self._net = net.to(self.device).eval()
        levels = getattr(getattr(net, "corr_block", None), "num_levels", 4)
        self._min_side = 8 * 2 * 2 ** (levels - 1)

    def _to_tensor(self, frames: np.ndarray):
        """uint8 ``(N, H, W[, 3])`` -> float ``(N, 3, H, W)`` in ``[-1, 1]`` on the device."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        if x.ndim == 3:
            x = x.unsqueeze(-1).expand(-1, -1, -1, 3)
        return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def _pad(self, x):
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        ph = max(-(-h // 8) * 8, self._min_side) - h
        pw = max(-(-w // 8) * 8, self._min_side) - w
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def _pairs(self, a, b) -> np.ndarray:
        """Flow for image batches ``a`` -> ``b`` (``(N, 3, H, W)`` on the device): ``(N, H, W, 2)``."""
        h, w = a.shape[-2:]
        flows = self._net(self._pad(a), self._pad(b), num_flow_updates=self.num_flow_updates)
        flow = flows[-1][:, :, :h, :w]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import torch

        a, b = np.asarray(prev), np.asarray(nxt)
        if a.shape[:2] != b.shape[:2]:
            raise ValueError(f"frames differ in size: {a.shape[:2]} vs {b.shape[:2]}")
        frames = _check_frames(np.stack([to_grey(a), to_grey(b)]) if a.ndim != b.ndim else np.stack([a, b]))
        with torch.no_grad():
            x = self._to_tensor(frames)
            return self._pairs(x[:1], x[1:])[0]

    def sequence(self, frames: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames of uint8 ``(T, H, W, 3)`` (or grey ``(T, H, W)``):
        float32 ``(T-1, H, W, 2)``, in batches of ``batch_size`` pairs."""
        import torch

        frames = _check_frames(frames)
        t, h, w = frames.shape[:3]
        out = np.empty((max(t - 1, 0), h, w, 2), np.float32)
        with torch.no_grad():
            for start in range(0, t - 1, self.batch_size):
                stop = min(start + self.batch_size, t - 1)
                x = self._to_tensor(frames[start:stop + 1])  # each frame converted once per chunk
                out[start:stop] = self._pairs(x[:-1], x[1:])
        return out


def make_flow(backend: str = "dis", **options) -> DISFlow | RAFTFlow:
    """A flow function ``(prev, next) -> (H, W, 2)`` (with ``.sequence(frames)``) for ``backend``:
    ``dis`` (options: ``preset``) or ``raft`` (options: ``model``, ``weights``, ``device``,
    ``num_flow_updates``, ``batch_size``)."""
    if backend == "dis":
        return DISFlow(**options)
    if backend == "raft":
        return RAFTFlow(**options)
    raise ConfigError(f"unknown optical-flow backend {backend!r}", fix=f"use one of {', '.join(BACKENDS)}")


def iter_flow(
    path: str | Path,
    fps: float | None = None,
    *,
    short_side: int | None = 128,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    backend: str = "dis",
    preset: str = "medium",
    **flow_options,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(t, flow)`` for a video: the flow from the frame before ``t`` to the frame at ``t``.

    Frames come from :func:`avsplit.io.iter_frames` (at ``fps``, or every frame when None;
    resized to ``short_side``/``size``). The first frame yields a zero flow, so there is one flow
    per frame. Only two frames are held at a time. ``preset`` applies to ``dis``; other
    ``flow_options`` go to :func:`make_flow` (e.g. ``weights=``, ``device=`` for ``raft``).
    """
    if backend == "dis":
        flow_options = {"preset": preset, **flow_options}
    flow_fn = make_flow(backend, **flow_options)
    prev = None
    for t, frame in media.iter_frames(path, fps=fps, start=start, duration=duration, short_side=short_side, size=size):
        # DIS works on grey frames; RAFT sees colour
        current = to_grey(frame) if backend == "dis" else np.asarray(frame)
        if prev is None:
            flow = np.zeros(current.shape[:2] + (2,), np.float32)
        else:
            flow = flow_fn(prev, current)
        prev = current
        yield t, flow


__all__ = ["BACKENDS", "DISFlow", "RAFTFlow", "make_flow", "iter_flow", "to_grey"]
