"""Drawn pictograms of the synthetic dataset's instruments and distractors: what a sprite is when no
colour emoji font renders. Each function draws its shape in a colour onto a 256 x 256 canvas."""

from __future__ import annotations

import math
from typing import Callable, Iterable

from PIL import ImageDraw

__all__ = ["DRAWN_SHAPES"]


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    if factor < 1:
        return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]
    return tuple(int(c + (255 - c) * (factor - 1)) for c in colour)  # type: ignore[return-value]


def _rot(points: Iterable[tuple[float, float]], angle_deg: float, centre: tuple[float, float]) -> list[tuple[float, float]]:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = centre
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca) for x, y in points]


def _bar(d: ImageDraw.ImageDraw, p0, p1, width, fill, outline=None):
    """A thick straight bar from p0 to p1 (a rotated rectangle)."""
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
    d.polygon([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill=fill, outline=outline)


def _draw_keys(d, c):
    dark = (35, 35, 40)
    d.rounded_rectangle((16, 64, 240, 196), radius=14, fill=dark)
    d.rectangle((28, 96, 228, 184), fill=(250, 250, 250))
    step = 200 / 7
    for i in range(1, 7):
        x = 28 + i * step
        d.line((x, 96, x, 184), fill=dark, width=3)
    for i in (1, 2, 4, 5, 6):
        x = 28 + i * step
        d.rectangle((x - 9, 96, x + 9, 148), fill=dark)
    d.rectangle((28, 74, 228, 86), fill=(200, 40, 40))


def _draw_guitar(d, c):
    dark = _shade(c, 0.5)
    _bar(d, (130, 150), (214, 30), 18, fill=(120, 75, 35))
    d.polygon(_rot([(200, 20), (232, 20), (232, 52), (200, 52)], -35, (216, 36)), fill=(60, 40, 20))
    d.ellipse((40, 120, 150, 230), fill=c, outline=dark, width=6)
    d.ellipse((78, 80, 158, 160), fill=c, outline=dark, width=6)
    d.ellipse((70, 128, 142, 200), fill=c)
    d.ellipse((100, 130, 130, 160), fill=(30, 20, 15))
    d.rectangle((70, 182, 110, 192), fill=(40, 30, 20))


def _draw_violin(d, c):
    dark = _shade(c, 0.55)
    _bar(d, (128, 120), (128, 12), 18, fill=(30, 25, 20))
    d.ellipse((74, 62, 182, 138), fill=c, outline=dark, width=5)
    d.ellipse((66, 130, 190, 236), fill=c, outline=dark, width=5)
    d.rectangle((96, 120, 160, 150), fill=c)
    for x in (100, 156):
        d.arc((x - 10, 130, x + 10, 180), 100, 260 if x < 128 else 280, fill=(20, 10, 5), width=4)
    _bar(d, (128, 110), (128, 222), 6, fill=(30, 25, 20))
    _bar(d, (30, 40), (230, 210), 5, fill=(230, 220, 190))


def _draw_trumpet(d, c):
    dark = _shade(c, 0.55)
    d.rounded_rectangle((30, 120, 180, 140), radius=8, fill=c, outline=dark, width=3)
    d.rounded_rectangle((70, 150, 170, 170), radius=8, fill=c, outline=dark, width=3)
    d.polygon([(170, 120), (232, 82), (232, 178), (170, 140)], fill=c, outline=dark)
    d.ellipse((220, 82, 244, 178), fill=_shade(c, 0.7), outline=dark, width=3)
    for x in (96, 118, 140):
        d.rectangle((x - 7, 92, x + 7, 160), fill=_shade(c, 0.85), outline=dark, width=2)
        d.ellipse((x - 10, 82, x + 10, 96), fill=_shade(c, 1.3), outline=dark, width=2)
    d.rectangle((14, 124, 32, 136), fill=dark)


def _draw_saxophone(d, c):
    dark = _shade(c, 0.5)
    d.arc((70, 130, 170, 236), 0, 180, fill=c, width=34)
    _bar(d, (87, 186), (100, 40), 34, fill=c)
    _bar(d, (153, 186), (182, 112), 30, fill=c)
    d.polygon([(162, 118), (226, 76), (236, 110), (196, 130)], fill=c, outline=dark)
    d.ellipse((210, 66, 244, 116), fill=dark)
    _bar(d, (100, 40), (140, 18), 14, fill=(30, 30, 30))
    for y in (70, 100, 130, 160):
        d.ellipse((94 - 8, y - 8, 94 + 8, y + 8), fill=_shade(c, 1.45), outline=dark, width=2)


def _draw_flute(d, c):
    dark = _shade(c, 0.5)
    _bar(d, (30, 226), (226, 30), 26, fill=c, outline=dark)
    for k in range(6):
        f = 0.28 + k * 0.09
        x, y = 30 + (226 - 30) * f, 226 + (30 - 226) * f
        d.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(25, 25, 35))
    d.ellipse((196, 48, 212, 64), fill=(25, 25, 35))


def _draw_accordion(d, c):
    dark = _shade(c, 0.5)
    d.rounded_rectangle((10, 60, 66, 200), radius=8, fill=_shade(c, 0.8), outline=dark, width=4)
    d.rounded_rectangle((190, 60, 246, 200), radius=8, fill=_shade(c, 0.8), outline=dark, width=4)
    for i in range(8):
        x0 = 66 + i * 15.5
        d.rectangle((x0, 72, x0 + 15.5, 188), fill=c if i % 2 == 0 else _shade(c, 0.6))
    for y in range(80, 190, 22):
        for x in (28, 48):
            d.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(245, 245, 245))
    for y in range(76, 190, 14):
        d.rectangle((200, y, 236, y + 8), fill=(245, 245, 245))


def _draw_banjo(d, c):
    _bar(d, (128, 140), (128, 12), 20, fill=(110, 70, 35))
    d.rounded_rectangle((112, 4, 144, 36), radius=6, fill=(70, 45, 20))
    d.ellipse((48, 100, 208, 252), fill=(150, 150, 160))
    d.ellipse((60, 112, 196, 240), fill=c)
    for a in range(0, 360, 30):
        x = 128 + 74 * math.cos(math.radians(a))
        y = 176 + 72 * math.sin(math.radians(a))
        d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(90, 90, 100))
    d.rectangle((104, 196, 152, 204), fill=(60, 40, 20))


def _draw_drum(d, c):
    dark = _shade(c, 0.5)
    _bar(d, (40, 20), (150, 120), 10, fill=(210, 170, 110))
    _bar(d, (216, 20), (106, 120), 10, fill=(210, 170, 110))
    d.rectangle((36, 120, 220, 214), fill=c)
    d.ellipse((36, 194, 220, 234), fill=c, outline=dark, width=4)
    for k in range(7):
        x0 = 36 + k * 184 / 7
        d.line((x0, 130, x0 + 184 / 14, 206), fill=(245, 245, 245), width=4)
        d.line((x0 + 184 / 14, 206, x0 + 184 / 7, 130), fill=(245, 245, 245), width=4)
    d.ellipse((36, 100, 220, 140), fill=(240, 235, 225), outline=dark, width=4)


def _draw_djembe(d, c):
    dark = _shade(c, 0.5)
    d.polygon([(56, 50), (200, 50), (150, 140), (106, 140)], fill=c, outline=dark)
    d.polygon([(106, 136), (150, 136), (178, 238), (78, 238)], fill=_shade(c, 0.8), outline=dark)
    d.ellipse((52, 30, 204, 70), fill=(235, 215, 175), outline=dark, width=4)
    for k in range(8):
        x = 66 + k * 18
        d.line((x, 60, 100 + k * 8, 138), fill=(245, 235, 200), width=3)


def _draw_bell(d, c):
    dark = _shade(c, 0.55)
    pts = [(128, 26)]
    for k in range(21):
        u = k / 20
        half = 30 + 66 * u ** 1.6
        y = 40 + 150 * u
        pts.append((128 + half, y))
    pts.append((128 + 100, 200))
    pts.append((128 - 100, 200))
    for k in range(20, -1, -1):
        u = k / 20
        half = 30 + 66 * u ** 1.6
        pts.append((128 - half, 40 + 150 * u))
    d.polygon(pts, fill=c, outline=dark)
    d.ellipse((98, 18, 158, 62), fill=c, outline=dark, width=3)
    d.rectangle((30, 188, 226, 204), fill=_shade(c, 0.8), outline=dark)
    d.ellipse((108, 200, 148, 240), fill=dark)
    d.ellipse((116, 8, 140, 30), outline=dark, width=5)


def _draw_horn(d, c):
    dark = _shade(c, 0.5)
    d.ellipse((28, 54, 180, 206), outline=c, width=26)
    d.ellipse((28, 54, 180, 206), outline=dark, width=3)
    d.polygon([(150, 112), (236, 60), (236, 200), (150, 148)], fill=c, outline=dark)
    d.ellipse((224, 60, 248, 200), fill=_shade(c, 0.7), outline=dark, width=3)
    d.rectangle((70, 118, 120, 142), fill=_shade(c, 1.35), outline=dark, width=2)
    _bar(d, (60, 190), (20, 236), 10, fill=(70, 70, 70))


def _draw_ball(d, c):
    d.ellipse((20, 20, 236, 236), fill=c, outline=(40, 40, 40), width=6)
    centre = [(128 + 40 * math.cos(math.radians(a)), 128 + 40 * math.sin(math.radians(a))) for a in range(-90, 270, 72)]
    d.polygon(centre, fill=(30, 30, 30))
    for a in range(-90, 270, 72):
        x, y = 128 + 96 * math.cos(math.radians(a + 36)), 128 + 96 * math.sin(math.radians(a + 36))
        d.ellipse((x - 18, y - 18, x + 18, y + 18), fill=(30, 30, 30))


def _draw_flower(d, c):
    for a in range(0, 360, 40):
        x, y = 128 + 62 * math.cos(math.radians(a)), 128 + 62 * math.sin(math.radians(a))
        d.ellipse((x - 42, y - 42, x + 42, y + 42), fill=c, outline=_shade(c, 0.7), width=3)
    d.ellipse((88, 88, 168, 168), fill=(140, 80, 20))


def _draw_chick(d, c):
    d.ellipse((40, 100, 220, 240), fill=c)
    d.ellipse((70, 30, 170, 130), fill=c)
    d.polygon([(164, 72), (210, 86), (164, 100)], fill=(245, 130, 20))
    d.ellipse((134, 60, 150, 76), fill=(20, 20, 20))
    d.polygon([(80, 150), (150, 140), (120, 190)], fill=_shade(c, 0.8))


def _draw_balloon(d, c):
    d.line((128, 200, 118, 252), fill=(90, 90, 90), width=4)
    d.polygon([(118, 196), (138, 196), (128, 184)], fill=_shade(c, 0.7))
    d.ellipse((54, 6, 202, 194), fill=c)
    d.ellipse((84, 36, 118, 82), fill=_shade(c, 1.5))


def _draw_star(d, c):
    pts = []
    for k in range(10):
        r = 118 if k % 2 == 0 else 50
        a = math.radians(-90 + 36 * k)
        pts.append((128 + r * math.cos(a), 136 + r * math.sin(a)))
    d.polygon(pts, fill=c, outline=_shade(c, 0.6))


def _draw_butterfly(d, c):
    dark = (30, 20, 15)
    d.ellipse((20, 30, 126, 140), fill=c, outline=dark, width=6)
    d.ellipse((130, 30, 236, 140), fill=c, outline=dark, width=6)
    d.ellipse((44, 130, 124, 220), fill=_shade(c, 0.85), outline=dark, width=6)
    d.ellipse((132, 130, 212, 220), fill=_shade(c, 0.85), outline=dark, width=6)
    d.rounded_rectangle((120, 40, 136, 220), radius=8, fill=dark)


def _draw_apple(d, c):
    d.ellipse((30, 60, 140, 236), fill=c)
    d.ellipse((116, 60, 226, 236), fill=c)
    _bar(d, (128, 76), (140, 24), 10, fill=(100, 60, 20))
    d.ellipse((140, 20, 200, 52), fill=(60, 160, 50))
    d.ellipse((60, 90, 90, 130), fill=_shade(c, 1.5))


DRAWN_SHAPES: dict[str, Callable[[ImageDraw.ImageDraw, tuple[int, int, int]], None]] = {
    "keys": _draw_keys,
    "guitar": _draw_guitar,
    "violin": _draw_violin,
    "trumpet": _draw_trumpet,
    "saxophone": _draw_saxophone,
    "flute": _draw_flute,
    "accordion": _draw_accordion,
    "banjo": _draw_banjo,
    "drum": _draw_drum,
    "djembe": _draw_djembe,
    "bell": _draw_bell,
    "horn": _draw_horn,
    "ball": _draw_ball,
    "flower": _draw_flower,
    "chick": _draw_chick,
    "balloon": _draw_balloon,
    "star": _draw_star,
    "butterfly": _draw_butterfly,
    "apple": _draw_apple,
}
