"""The picture of one video: frame size and rate, background, sprites and their motion.

``variety none`` keeps today's picture (the settings' size and rate, a textured background,
instruments side by side, the bounce motion). ``variety full`` draws the frame size and aspect,
frame rate, H.264 quality, background family, sprite sizes and free positions, glyph style and
motion style per source, colour jitter and camera motion (see docs/domains.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image

from avsplit.synth.backgrounds import make_background, make_family_background
from avsplit.synth.clip import sounding_level
from avsplit.synth.glyphs import find_outline_font, mono_image, outline_image
from avsplit.synth.instruments import DISTRACTORS, Category
from avsplit.synth.motion import styled_motion
from avsplit.synth.scene import Actor, distractor_layout, distractor_motion, distractor_rhythm, duet_layout, fit_sprite, render_scene, solo_layout
from avsplit.synth.sprites import sprite_image

__all__ = ["Look", "plan_look", "build_actors", "render_look"]


@dataclass
class Look:
    width: int
    height: int
    fps: float
    n_frames: int
    crf: int
    background: str
    image: np.ndarray
    """The background, uint8 ``(height, width, 3)``."""
    places: list
    """Per source ``(cx, cy, sprite height, max sprite width)``."""
    glyphs: list[str]
    motions: list[str]
    distractors: int
    paints: list = field(default_factory=list)
    """Per source ``(fill, rim)`` colours for outline and mono glyphs (full variety)."""
    extra: dict = field(default_factory=dict)
    """Full-variety details (camera, jitter) for the truth."""

    def describe(self) -> dict:
        return {"background": self.background, "crf": self.crf, **self.extra}


def _glyph_for(plan_glyph: str, st) -> str:
    if plan_glyph == "emoji" and st.sprite_kind == "emoji":
        return "emoji"
    return "drawn" if plan_glyph in ("emoji", "drawn") else plan_glyph


def plan_look(st, kind: str, n_sources: int, sound, rng_look: np.random.Generator, rng_scene: np.random.Generator) -> Look:
    """The picture plan of one video (``sound``: its :class:`~avsplit.synth.clip.SoundPart`)."""
    if st.variety == "full":
        return _full_look(st, n_sources, sound, rng_look)
    width, height, fps = st.width, st.height, st.fps
    n_frames = max(1, int(round(st.seconds * fps)))
    image = make_background(rng_scene, width, height)
    places = solo_layout(rng_scene, width, height) if kind == "solo" else duet_layout(rng_scene, width, height)
    glyphs = [_glyph_for(p.glyph, st) for p in sound.plans]
    motions = [p.motion for p in sound.plans]
    return Look(width, height, fps, n_frames, 23, sound.background, image, places, glyphs, motions, st.distractors)


ASPECTS = ((4, 3), (16, 9), (3, 2), (1, 1), (9, 16), (3, 4))
FRAME_RATES = (12.0, 15.0, 20.0, 24.0, 25.0, 30.0, 48.0, 50.0, 60.0)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _full_look(st, n_sources: int, sound, rng: np.random.Generator) -> Look:
    """Random frame (aspect, size about the settings' area), rate, quality, free layout."""
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    area = st.width * st.height * float(rng.uniform(0.6, 1.5))
    height = max(32, int(round(np.sqrt(area * ah / aw) / 2)) * 2)
    width = max(32, int(round(height * aw / ah / 2)) * 2)
    fps = float(rng.choice(FRAME_RATES))
    n_frames = max(1, int(round(st.seconds * fps)))
    crf = int(rng.integers(18, 33))
    image = make_family_background(rng, sound.background, width, height)
    places = []
    for _ in range(n_sources):
        h = float(rng.uniform(0.1, 0.7)) * height
        cx = float(rng.uniform(0.15, 0.85)) * width
        cy = float(rng.uniform(0.2, 0.8)) * height
        places.append((cx, cy, h, 0.9 * width))
    glyphs = [_glyph_for(p.glyph, st) for p in sound.plans]
    motions = [p.motion for p in sound.plans]
    paints = [(_random_colour(rng), (255, 255, 255) if rng.random() < 0.5 else (20, 20, 20)) for _ in range(n_sources)]
    camera = {"shake": round(float(rng.choice((0.0, 0.0, 0.004, 0.012))), 4),
              "zoom": round(float(rng.choice((0.0, 0.0, 0.08, 0.2))), 3),
              "brightness": round(float(rng.uniform(0.75, 1.2)), 3), "contrast": round(float(rng.uniform(0.8, 1.15)), 3),
              "seed": int(rng.integers(1 << 31))}
    distractors = int(rng.integers(0, 4)) if st.distractors == 0 else st.distractors
    return Look(width, height, fps, n_frames, crf, sound.background, image, places, glyphs, motions, distractors,
                paints, {"camera": camera, "distractors": distractors})


def _sprite(glyph: str, st, emoji: str, shape: str, colour, paint=None) -> tuple[Image.Image, str]:
    """The sprite image and the glyph style it really has (a missing glyph is drawn).
    ``paint``: ``(fill, rim)`` colours of an outline or mono glyph. A mono glyph is made from the
    emoji (the drawn shape where there is none); it is hollow (edges only) when its fill's red
    level is odd, which varies it without one more random draw."""
    if glyph == "mono" and paint:
        base, _ = _sprite("emoji", st, emoji, shape, colour)
        return mono_image(base, *paint, hollow=paint[0][0] % 2 == 1), "mono"
    if glyph == "outline":
        font = find_outline_font()
        image = outline_image(emoji, font, *paint) if font is not None and paint else None
        if image is not None:
            return image, "outline"
    if glyph == "emoji":
        image = sprite_image("emoji", st.font, emoji, shape, colour)
        drawn = sprite_image("drawn", None, emoji, shape, colour)
        return image, "drawn" if image is drawn else "emoji"
    return sprite_image("drawn", None, emoji, shape, colour), "drawn"


def build_actors(st, look: Look, cats: list[Category], sound, rng_motion: np.random.Generator,
                 rng_extra: np.random.Generator) -> tuple[list[Actor], list, list[np.ndarray]]:
    """Actors (distractors first, behind), the distractor objects, and each source's sounding flags."""
    actors: list[Actor] = []
    extras = []
    if look.distractors:
        picks = rng_extra.permutation(len(DISTRACTORS))
        spots = distractor_layout(rng_extra, look.width, look.height, look.distractors)
        for i, (cx, cy, h, max_w) in enumerate(spots):
            obj = DISTRACTORS[int(picks[i % len(picks)])]
            image = fit_sprite(sprite_image(st.sprite_kind, st.font, obj.emoji, obj.shape, obj.colour), h, max_w)
            if st.variety == "full":  # its own rhythm, in a random style
                style = str(rng_extra.choice(list(st.resources.motions)))
                level, onsets = distractor_rhythm(rng_extra, look.fps, look.n_frames)
                motion = styled_motion(style, level, onsets, look.fps, rng_extra)
            else:
                motion = distractor_motion(rng_extra, look.fps, look.n_frames)
            actors.append(Actor(image, cx, cy, motion))
            extras.append(obj)
    sounding = []
    for i, (cat, audio, mel, (cx, cy, h, max_w)) in enumerate(zip(cats, sound.sources, sound.melodies, look.places)):
        level, flags = sounding_level(audio, st.sample_rate, look.fps, look.n_frames)
        sounding.append(flags)
        paint = look.paints[i] if look.paints else None
        image, look.glyphs[i] = _sprite(look.glyphs[i], st, cat.emoji, cat.shape, cat.colour, paint)
        motion = styled_motion(look.motions[i], level, mel.onsets, look.fps, rng_motion)
        actors.append(Actor(fit_sprite(image, h, max_w), cx, cy, motion))
    return actors, extras, sounding


def _camera_path(camera: dict, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: zoom factor (>= 1) and the view centre's offset (share of the frame)."""
    rng = np.random.default_rng(camera["seed"])
    u = np.arange(n_frames) / max(1, n_frames - 1)
    zoom = 1.0 + camera["zoom"] * (u if rng.random() < 0.5 else 1.0 - u)
    walk = rng.standard_normal((n_frames, 2)).cumsum(0) * camera["shake"]
    walk -= walk.mean(0)
    jitter = rng.standard_normal((n_frames, 2)) * camera["shake"] * 0.5
    off = np.clip(walk + jitter, -0.04, 0.04)
    return zoom, off[:, 0], off[:, 1]


def _through_camera(frame: np.ndarray, boxes: list[list[int]], zoom: float, dx: float, dy: float,
                    gain: float, contrast: float) -> tuple[np.ndarray, list[list[int]]]:
    """Crop the view (a zoom about the centre, shifted by ``dx, dy``), scale it back to the frame
    size, map the boxes the same way, and apply brightness and contrast."""
    h, w = frame.shape[:2]
    vw, vh = w / zoom, h / zoom
    x0 = min(max((w - vw) / 2 + dx * w, 0.0), w - vw)
    y0 = min(max((h - vh) / 2 + dy * h, 0.0), h - vh)
    if zoom != 1.0 or x0 or y0:
        image = Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + vw, y0 + vh))
        frame = np.asarray(image)
        sx, sy = w / vw, h / vh
        mapped = []
        for bx0, by0, bx1, by1 in boxes:
            nx0 = min(max(int(np.floor((bx0 - x0) * sx)), 0), w - 1)
            ny0 = min(max(int(np.floor((by0 - y0) * sy)), 0), h - 1)
            nx1 = max(min(int(np.ceil((bx1 - x0) * sx)), w), nx0 + 1)
            ny1 = max(min(int(np.ceil((by1 - y0) * sy)), h), ny0 + 1)
            mapped.append([nx0, ny0, nx1, ny1])
        boxes = mapped
    if gain != 1.0 or contrast != 1.0:
        f = frame.astype(np.float32)
        frame = np.clip((f - 128.0) * contrast + 128.0 * gain, 0, 255).astype(np.uint8)
    return frame, boxes


def render_look(look: Look, actors: list[Actor]) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
    """Frames and per-actor boxes, through the camera (zoom, shake, brightness) in full variety."""
    camera = look.extra.get("camera")
    if not camera:
        yield from render_scene(look.image, actors, look.n_frames)
        return
    zoom, dx, dy = _camera_path(camera, look.n_frames, look.fps)
    for k, (frame, boxes) in enumerate(render_scene(look.image, actors, look.n_frames)):
        yield _through_camera(frame, boxes, float(zoom[k]), float(dx[k]), float(dy[k]), camera["brightness"], camera["contrast"])
