"""Animation and compositing: sprites that move with their own sound, on a static background.

Each object's pose per frame (lift, rotation, scale) is a function of a loudness level in
[0, 1] and of note onsets: it bounces up and grows with the level, sways (rotates) back and
forth with an amplitude that follows the level, and jolts (a quick lift, pop and tilt) at each
onset. At level 0 the pose is exactly the rest pose, so a silent source is perfectly still.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

__all__ = ["Motion", "instrument_motion", "distractor_motion", "Actor", "render_scene", "solo_layout", "duet_layout",
           "distractor_layout", "fit_sprite", "distractor_rhythm"]

_JOLT_TAU = 0.08  # seconds: decay of the onset jolt
_ALPHA_MIN = 24


@dataclass(frozen=True)
class Motion:
    """Per-frame pose offsets of one object."""

    lift: np.ndarray
    """Upward displacement as a share of the sprite's height (>= 0)."""
    angle: np.ndarray
    """Rotation in degrees (counter-clockwise)."""
    scale: np.ndarray
    """Size factor (1 at rest)."""
    shift: np.ndarray
    """Horizontal displacement as a share of the sprite's width."""
    arm: np.ndarray | None = None
    """Angle in degrees of a strumming/bowing arm drawn over the sprite (None: no arm)."""


def _jolts(onsets: Sequence[float], fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the jolt of the latest onset (1 in the frame holding the onset, decaying after)
    and its side (+1/-1, alternating from one onset to the next)."""
    t = np.arange(n_frames) / fps
    jolt = np.zeros(n_frames)
    side = np.ones(n_frames)
    for i, onset in enumerate(sorted(onsets)):
        k0 = int(np.floor(onset * fps + 1e-9))
        if k0 >= n_frames:
            break
        k0 = max(k0, 0)
        dt = np.maximum(0.0, t[k0:] - onset)
        jolt[k0:] = np.exp(-dt / _JOLT_TAU)
        side[k0:] = 1.0 if i % 2 == 0 else -1.0
    jolt[jolt < 0.02] = 0.0
    return jolt, side


def instrument_motion(level: np.ndarray, onsets: Sequence[float], fps: float, rng: np.random.Generator) -> Motion:
    """Motion of an instrument whose loudness per frame is ``level`` (0 = silent)."""
    n = len(level)
    t = np.arange(n) / fps
    level = np.asarray(level, dtype=np.float64)
    active = level > 0
    jolt, side = _jolts(onsets, fps, n)
    jolt = jolt * active
    bounce = rng.uniform(0.07, 0.11)
    bob_hz = rng.uniform(2.0, 3.5)
    bob_phase = rng.uniform(0, 2 * np.pi)
    jolt_lift = rng.uniform(0.07, 0.11)
    sway = rng.uniform(4.0, 8.0)
    sway_hz = rng.uniform(1.2, 2.4)
    sway_phase = rng.uniform(0, 2 * np.pi)
    kick = rng.uniform(4.0, 7.0)
    grow = rng.uniform(0.08, 0.13)
    pop = rng.uniform(0.05, 0.09)
    lift = level * bounce * (0.75 + 0.25 * np.sin(2 * np.pi * bob_hz * t + bob_phase)) + jolt_lift * jolt
    angle = sway * level * np.sin(2 * np.pi * sway_hz * t + sway_phase) + kick * jolt * side
    scale = 1.0 + grow * level + pop * jolt
    return Motion(lift, angle, scale, np.zeros(n))


def distractor_rhythm(rng: np.random.Generator, fps: float, n_frames: int) -> tuple[np.ndarray, list[float]]:
    """A silent object's own rhythm: a per-frame level of random hits that decay, with pauses,
    and the hit times."""
    seconds = n_frames / fps
    rate = rng.uniform(0.8, 2.2)
    onsets: list[float] = []
    t = float(rng.uniform(0, 1.0))
    while t < seconds:
        onsets.append(t)
        t += float(rng.exponential(1.0 / rate)) + 0.12
        if rng.random() < 0.2:
            t += float(rng.uniform(0.5, 1.5))
    times = np.arange(n_frames) / fps
    level = np.zeros(n_frames)
    for onset in onsets:
        decay = rng.uniform(0.15, 0.6)
        strength = rng.uniform(0.5, 1.0)
        after = times >= onset - 1e-9
        level = np.maximum(level, np.where(after, strength * np.exp(-(times - onset) / decay), 0.0))
    level[level < 0.05] = 0.0
    return level, onsets


def distractor_motion(rng: np.random.Generator, fps: float, n_frames: int) -> Motion:
    """A silent object's motion: the same kind of movement, driven by its own random rhythm
    (:func:`distractor_rhythm`), plus a slow horizontal drift."""
    level, onsets = distractor_rhythm(rng, fps, n_frames)
    times = np.arange(n_frames) / fps
    motion = instrument_motion(level, onsets, fps, rng)
    drift = rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * times + rng.uniform(0, 2 * np.pi))
    return Motion(motion.lift, motion.angle, motion.scale, drift)


def fit_sprite(image: Image.Image, height: float, max_width: float) -> Image.Image:
    """Scale a sprite to ``height`` pixels high (narrower if it would exceed ``max_width``)."""
    w0, h0 = image.size
    s = min(height / h0, max_width / w0)
    size = (max(2, int(round(w0 * s))), max(2, int(round(h0 * s))))
    return image.resize(size, Image.Resampling.LANCZOS)


@dataclass
class Actor:
    """One object in the scene: a sprite at a rest position, and its motion."""

    image: Image.Image
    """RGBA sprite at its rest size."""
    cx: float
    cy: float
    """Rest position of the sprite's centre (pixels)."""
    motion: Motion
    _cache: dict = field(default_factory=dict, repr=False)

    def pose(self, k: int) -> tuple[Image.Image, tuple[int, int, int, int], float, float]:
        """Sprite image at frame ``k``, its visible bounds inside that image, and its centre."""
        m = self.motion
        scale = round(float(m.scale[k]) * 200) / 200
        angle = round(float(m.angle[k]) * 4) / 4
        arm = None if m.arm is None else round(float(m.arm[k]) / 2) * 2
        key = (scale, angle, arm)
        hit = self._cache.get(key)
        if hit is None:
            image = self.image if arm is None else _with_arm(self.image, arm)
            if scale != 1.0:
                w, h = image.size
                image = image.resize((max(2, int(round(w * scale))), max(2, int(round(h * scale)))), Image.Resampling.BILINEAR)
            if angle != 0.0:
                image = image.convert("RGBa").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True).convert("RGBA")
            alpha = image.getchannel("A").point(lambda a: 255 if a >= _ALPHA_MIN else 0)
            bbox = alpha.getbbox() or (0, 0, image.size[0], image.size[1])
            hit = (image, bbox)
            if len(self._cache) < 512:
                self._cache[key] = hit
        w0, h0 = self.image.size
        cx = self.cx + float(m.shift[k]) * w0
        cy = self.cy - float(m.lift[k]) * h0
        return hit[0], hit[1], cx, cy


def _with_arm(image: Image.Image, angle: float) -> Image.Image:
    """``image`` on a canvas padded by a third each side, with a dark bar (an arm holding a bow
    or a pick) pivoting at the upper right at ``angle`` degrees."""
    from PIL import ImageDraw

    w, h = image.size
    pw, ph = w // 3, h // 3
    canvas = Image.new("RGBA", (w + 2 * pw, h + 2 * ph), (0, 0, 0, 0))
    canvas.paste(image, (pw, ph))
    px, py = pw + 0.85 * w, ph + 0.2 * h
    length = 0.75 * max(w, h)
    a = np.radians(200.0 + angle)
    x1, y1 = px + length * np.cos(a), py - length * np.sin(a)
    draw = ImageDraw.Draw(canvas)
    width = max(2, int(0.07 * max(w, h)))
    draw.line((px, py, x1, y1), fill=(60, 40, 30, 255), width=width)
    draw.ellipse((x1 - width, y1 - width, x1 + width, y1 + width), fill=(235, 190, 150, 255))
    return canvas


def render_scene(
    background: np.ndarray, actors: Sequence[Actor], n_frames: int
) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
    """Yield ``(frame, boxes)`` per frame: the RGB uint8 frame with the actors drawn in order
    (later ones in front), and each actor's visible bounds ``[x0, y0, x1, y1]`` clipped to it."""
    height, width = background.shape[:2]
    base = Image.fromarray(background, "RGB")
    for k in range(n_frames):
        frame = base.copy()
        boxes: list[list[int]] = []
        for actor in actors:
            image, (bx0, by0, bx1, by1), cx, cy = actor.pose(k)
            x = int(round(cx - image.size[0] / 2))
            y = int(round(cy - image.size[1] / 2))
            frame.paste(image, (x, y), image)
            x0, y0 = min(max(x + bx0, 0), width - 1), min(max(y + by0, 0), height - 1)
            x1, y1 = max(min(x + bx1, width), x0 + 1), max(min(y + by1, height), y0 + 1)
            boxes.append([x0, y0, x1, y1])
        yield np.asarray(frame), boxes


# ------------------------------------------------------------------------------------ layouts


def solo_layout(rng: np.random.Generator, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """One ``(cx, cy, sprite height, max sprite width)``: roughly centred, random offset and size."""
    h = rng.uniform(0.4, 0.55) * height
    cx = width / 2 + rng.uniform(-0.12, 0.12) * width
    cy = rng.uniform(0.52, 0.62) * height
    return [(cx, cy, h, 0.6 * width)]


def duet_layout(rng: np.random.Generator, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """Two placements, one in each half of the frame."""
    out = []
    for i in range(2):
        h = rng.uniform(0.32, 0.42) * height
        cx = (0.25 + 0.5 * i) * width + rng.uniform(-0.05, 0.05) * width
        cy = rng.uniform(0.52, 0.64) * height
        out.append((cx, cy, h, 0.34 * width))
    return out


def distractor_layout(rng: np.random.Generator, width: int, height: int, count: int) -> list[tuple[float, float, float, float]]:
    """Small objects near the top or bottom edge (drawn behind the instruments)."""
    out = []
    slots = rng.permutation(count)  # spread them over the width, one slot each
    for i in range(count):
        h = rng.uniform(0.12, 0.2) * height
        cx = (0.06 + 0.88 * (slots[i] + rng.uniform(0.2, 0.8)) / count) * width
        cy = (rng.uniform(0.1, 0.2) if rng.random() < 0.5 else rng.uniform(0.82, 0.9)) * height
        out.append((cx, cy, h, 0.2 * width))
    return out
