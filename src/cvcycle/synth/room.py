"""The static room: walls, floor, furniture along the back wall, door, windows, rug.

Drawn once per clip with PIL into an *albedo* image (surface colours before lighting); the lighting
module then decides how bright and what colour it looks. All furniture stands in a strip along the
back wall and the people and dogs walk in front of that strip, so furniture never occludes them and
their ground-truth boxes never have to account for it (a deliberate simplification).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from cvcycle.synth.camera import Camera, RoomShape

__all__ = ["ROOMS", "RoomLayout", "build_room"]

RGB = tuple[int, int, int]
FloatImage = npt.NDArray[np.float32]

ROOMS: tuple[str, ...] = ("living_room", "bedroom", "kitchen", "office")

WALLS: tuple[RGB, ...] = (
    (226, 216, 196),
    (200, 210, 220),
    (212, 222, 200),
    (236, 232, 224),
    (212, 190, 168),
    (190, 200, 186),
    (228, 206, 196),
    (180, 186, 196),
)
WOODS: tuple[RGB, ...] = (
    (140, 95, 60),
    (170, 125, 80),
    (110, 70, 45),
    (196, 160, 116),
    (90, 62, 42),
    (226, 222, 212),
    (62, 58, 54),
)
FABRICS: tuple[RGB, ...] = (
    (122, 62, 52),
    (62, 82, 122),
    (92, 112, 82),
    (152, 142, 122),
    (72, 72, 78),
    (172, 122, 82),
    (112, 92, 132),
    (192, 182, 162),
    (40, 60, 70),
)
FLOOR_TILES: tuple[RGB, ...] = ((180, 178, 170), (206, 192, 168), (168, 98, 70), (120, 122, 126))
CARPETS: tuple[RGB, ...] = ((130, 120, 108), (170, 160, 140), (100, 110, 124), (140, 130, 150))
BOOKS: tuple[RGB, ...] = (
    (160, 40, 40),
    (40, 70, 140),
    (220, 200, 150),
    (50, 110, 60),
    (30, 30, 30),
    (200, 120, 40),
    (120, 60, 120),
)


@dataclass(frozen=True)
class RoomLayout:
    name: str
    albedo: FloatImage  # (H, W, 3) surface colours, 0..255
    lamps: tuple[tuple[float, float], ...]  # image positions of lamp shades: glow sources
    windows: tuple[tuple[float, float, float, float], ...]  # image rects x0, y0, x1, y1
    depth: float  # metres the furniture strip reaches out from the back wall


def _jitter(rng: np.random.Generator, colour: RGB, amount: int = 12) -> RGB:
    c = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _pick(rng: np.random.Generator, options: Sequence[RGB], amount: int = 12) -> RGB:
    return _jitter(rng, options[int(rng.integers(len(options)))], amount)


def _scale(colour: RGB, k: float) -> RGB:
    return (min(255, round(colour[0] * k)), min(255, round(colour[1] * k)), min(255, round(colour[2] * k)))


class _Painter:
    """PIL drawing in world coordinates: faces of boxes and flat quads, projected by the camera."""

    def __init__(self, cam: Camera, image: Image.Image) -> None:
        self.cam = cam
        self.draw = ImageDraw.Draw(image)

    def quad(self, pts: Sequence[tuple[float, float, float]], colour: RGB) -> None:
        self.draw.polygon([self.cam.project(x, y, z) for x, y, z in pts], fill=colour)

    def line(
        self, p0: tuple[float, float, float], p1: tuple[float, float, float], colour: RGB, w: int
    ) -> None:
        self.draw.line([self.cam.project(*p0), self.cam.project(*p1)], fill=colour, width=w)

    def wall_rect(self, x0: float, x1: float, y0: float, y1: float, z: float, colour: RGB) -> None:
        """A flat rectangle on a plane of constant depth (the back wall or a box's front face)."""
        self.quad([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], colour)

    def box(self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, colour: RGB) -> None:
        """A solid box from the near face ``z0`` to the far face ``z1``, only its visible faces."""
        if y1 < self.cam.cam_height:  # the top is visible from a camera above it
            self.quad([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)], _scale(colour, 1.1))
        if x0 > 0:  # left side faces a camera standing left of it
            self.quad([(x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)], _scale(colour, 0.78))
        if x1 < 0:
            self.quad([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], _scale(colour, 0.78))
        self.wall_rect(x0, x1, y0, y1, z0, colour)


Point3 = tuple[float, float, float]
# A furniture drawer gets its x-extent and the back wall depth and returns lamp positions (glow).
Furniture = Callable[[_Painter, np.random.Generator, float, float, float], list[Point3]]


def _sofa(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, FABRICS)
    d = 0.85
    p.box(x0, x1, 0.0, 0.82, zb - 0.22, zb, _scale(c, 0.95))  # backrest
    p.box(x0, x1, 0.0, 0.42, zb - d, zb - 0.2, c)  # seat
    n = 2 if x1 - x0 < 1.8 else 3
    for i in range(n):  # cushions, slightly lighter, so the sofa is not one flat slab
        a = x0 + 0.2 + (x1 - x0 - 0.4) * i / n
        b = x0 + 0.2 + (x1 - x0 - 0.4) * (i + 1) / n - 0.03
        p.box(a, b, 0.42, 0.52, zb - d + 0.05, zb - 0.22, _scale(c, 1.08))
    p.box(x0, x0 + 0.2, 0.0, 0.62, zb - d, zb, _scale(c, 0.9))
    p.box(x1 - 0.2, x1, 0.0, 0.62, zb - d, zb, _scale(c, 0.9))
    return []


def _armchair(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    return _sofa(p, rng, x0, x1, zb)


def _table(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, WOODS)
    d, h = 0.75, float(rng.uniform(0.45, 0.78))
    for lx in (x0 + 0.04, x1 - 0.1):
        p.box(lx, lx + 0.06, 0.0, h, zb - 0.15, zb - 0.09, _scale(c, 0.8))  # back legs first
    for lx in (x0 + 0.04, x1 - 0.1):
        p.box(lx, lx + 0.06, 0.0, h, zb - d + 0.04, zb - d + 0.1, _scale(c, 0.85))
    p.box(x0, x1, h - 0.05, h, zb - d, zb - 0.05, c)
    if rng.random() < 0.6:  # something on it: a vase or a bowl
        cx = float(rng.uniform(x0 + 0.2, x1 - 0.3))
        p.box(cx, cx + 0.12, h, h + float(rng.uniform(0.1, 0.3)), zb - 0.45, zb - 0.35, _pick(rng, BOOKS))
    return []


def _shelves(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, WOODS)
    d, h = 0.35, float(rng.uniform(1.5, 2.0))
    z0 = zb - d
    p.box(x0, x1, 0.0, h, z0, zb, c)
    inner = _scale(c, 0.55)
    p.wall_rect(x0 + 0.04, x1 - 0.04, 0.08, h - 0.04, z0, inner)
    n = int(rng.integers(3, 6))
    for i in range(n):
        y = 0.08 + (h - 0.12) * i / n
        top = 0.08 + (h - 0.12) * (i + 1) / n
        p.wall_rect(x0 + 0.04, x1 - 0.04, y, y + 0.03, z0, c)
        bx = x0 + 0.05
        while bx < x1 - 0.1 and rng.random() < 0.9:  # a run of books of random widths and heights
            bw = float(rng.uniform(0.03, 0.08))
            bh = (top - y - 0.03) * float(rng.uniform(0.55, 0.9))
            p.wall_rect(bx, min(bx + bw, x1 - 0.05), y + 0.03, y + 0.03 + bh, z0, _pick(rng, BOOKS, 20))
            bx += bw + 0.005
        # leave the rest of the shelf empty
    return []


def _cabinet(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, WOODS)
    d, h = 0.5, float(rng.uniform(0.7, 1.0))
    p.box(x0, x1, 0.0, h, zb - d, zb, c)
    n = int(rng.integers(2, 4))
    for i in range(1, n):  # drawer seams and knobs
        y = h * i / n
        p.line((x0 + 0.02, y, zb - d), (x1 - 0.02, y, zb - d), _scale(c, 0.6), 1)
    for i in range(n):
        y = h * (i + 0.5) / n
        m = (x0 + x1) / 2
        p.wall_rect(m - 0.04, m + 0.04, y - 0.015, y + 0.015, zb - d, _scale(c, 0.5))
    lamps: list[Point3] = []
    if rng.random() < 0.5:  # a table lamp on top
        m = float(rng.uniform(x0 + 0.2, x1 - 0.2))
        p.box(m - 0.02, m + 0.02, h, h + 0.3, zb - 0.27, zb - 0.23, (60, 60, 60))
        shade = _pick(rng, ((236, 226, 200), (220, 200, 160), (200, 200, 200)))
        p.quad(
            [
                (m - 0.15, h + 0.28, zb - 0.25),
                (m + 0.15, h + 0.28, zb - 0.25),
                (m + 0.1, h + 0.5, zb - 0.25),
                (m - 0.1, h + 0.5, zb - 0.25),
            ],
            shade,
        )
        lamps.append((m, h + 0.4, zb - 0.25))
    elif rng.random() < 0.6:  # or a television
        m = (x0 + x1) / 2
        w = min(0.55, (x1 - x0) / 2 - 0.05)
        p.box(m - 0.05, m + 0.05, h, h + 0.08, zb - 0.3, zb - 0.2, (40, 40, 40))
        p.wall_rect(m - w, m + w, h + 0.08, h + 0.08 + w * 1.1, zb - 0.22, (28, 28, 32))
        p.wall_rect(m - w + 0.03, m + w - 0.03, h + 0.11, h + 0.05 + w * 1.1, zb - 0.22, (44, 48, 56))
    return lamps


def _wardrobe(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, WOODS)
    d, h = 0.6, float(rng.uniform(1.8, 2.2))
    p.box(x0, x1, 0.0, h, zb - d, zb, c)
    m = (x0 + x1) / 2
    p.line((m, 0.05, zb - d), (m, h - 0.05, zb - d), _scale(c, 0.55), 1)
    for k in (-0.06, 0.04):
        p.wall_rect(m + k, m + k + 0.02, h * 0.45, h * 0.55, zb - d, _scale(c, 0.45))
    return []


def _bed(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    frame = _pick(rng, WOODS)
    blanket = _pick(rng, FABRICS, 20)
    d = 1.1
    p.box(x0, x1, 0.0, float(rng.uniform(0.9, 1.2)), zb - 0.08, zb, frame)  # headboard
    p.box(x0, x1, 0.0, 0.48, zb - d, zb - 0.08, _scale(frame, 0.9))
    p.box(x0 + 0.03, x1 - 0.03, 0.48, 0.55, zb - d + 0.02, zb - 0.1, blanket)
    pillow = _pick(rng, ((236, 236, 232), (220, 226, 236), (236, 226, 210)))
    p.box(x0 + 0.1, x1 - 0.1, 0.55, 0.65, zb - 0.45, zb - 0.12, pillow)
    return []


def _counter(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, WOODS)
    top = _pick(rng, ((60, 60, 60), (220, 220, 215), (150, 130, 110), (30, 30, 34)))
    d = 0.6
    p.box(x0, x1, 0.0, 0.86, zb - d, zb, c)
    p.box(x0 - 0.02, x1 + 0.02, 0.86, 0.91, zb - d - 0.02, zb, top)
    doors = max(2, round((x1 - x0) / 0.5))
    for i in range(1, doors):
        x = x0 + (x1 - x0) * i / doors
        p.line((x, 0.08, zb - d), (x, 0.8, zb - d), _scale(c, 0.6), 1)
    # wall cabinets above it
    p.box(x0, x1, 1.45, 2.1, zb - 0.35, zb, _scale(c, 1.05))
    for i in range(1, doors):
        x = x0 + (x1 - x0) * i / doors
        p.line((x, 1.47, zb - 0.35), (x, 2.08, zb - 0.35), _scale(c, 0.6), 1)
    return []


def _fridge(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    c = _pick(rng, ((230, 230, 228), (180, 182, 186), (40, 40, 44)), 6)
    p.box(x0, x1, 0.0, 1.85, zb - 0.68, zb, c)
    p.line((x0 + 0.02, 1.2, zb - 0.68), (x1 - 0.02, 1.2, zb - 0.68), _scale(c, 0.6), 1)
    p.wall_rect(x1 - 0.1, x1 - 0.07, 1.3, 1.6, zb - 0.68, _scale(c, 0.5))
    return []


def _plant(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    m = (x0 + x1) / 2
    pot = _pick(rng, ((170, 90, 60), (220, 220, 215), (60, 60, 64), (190, 170, 140)))
    green = _pick(rng, ((60, 120, 60), (40, 100, 50), (90, 140, 70)), 15)
    h = float(rng.uniform(0.7, 1.3))
    z = zb - 0.3
    for _ in range(9):  # a bushy crown of leaf blobs
        cx = m + float(rng.normal(0, 0.15))
        cy = 0.4 + float(rng.uniform(0.1, 1.0)) * (h - 0.4)
        r = float(rng.uniform(0.08, 0.16))
        (u0, v0), (u1, v1) = p.cam.project(cx - r, cy + r, z), p.cam.project(cx + r, cy - r, z)
        p.draw.ellipse([u0, v0, u1, v1], fill=_jitter(rng, green, 15))
    p.box(m - 0.16, m + 0.16, 0.0, 0.38, z - 0.15, z + 0.15, pot)
    return []


def _floor_lamp(p: _Painter, rng: np.random.Generator, x0: float, x1: float, zb: float) -> list[Point3]:
    m = (x0 + x1) / 2
    z = zb - 0.3
    h = float(rng.uniform(1.4, 1.7))
    p.box(m - 0.15, m + 0.15, 0.0, 0.03, z - 0.12, z + 0.12, (50, 50, 50))
    p.box(m - 0.02, m + 0.02, 0.0, h, z - 0.02, z + 0.02, (70, 70, 70))
    shade = _pick(rng, ((236, 226, 200), (220, 200, 160), (200, 200, 200), (180, 60, 50)))
    p.quad(
        [(m - 0.22, h - 0.05, z), (m + 0.22, h - 0.05, z), (m + 0.13, h + 0.25, z), (m - 0.13, h + 0.25, z)],
        shade,
    )
    return [(m, h + 0.08, z)]


# Per room: furniture that is always there, then optional extras; (draw, min width, max width, tall).
_Item = tuple[Furniture, float, float, bool, float]  # draw, min w, max w, tall, strip depth
_ITEMS: dict[str, _Item] = {
    "sofa": (_sofa, 1.6, 2.3, False, 0.85),
    "armchair": (_armchair, 0.8, 1.0, False, 0.85),
    "table": (_table, 0.9, 1.6, False, 0.75),
    "shelves": (_shelves, 0.7, 1.3, True, 0.35),
    "cabinet": (_cabinet, 0.8, 1.5, False, 0.5),
    "wardrobe": (_wardrobe, 1.0, 1.6, True, 0.6),
    "bed": (_bed, 1.4, 1.8, False, 1.1),
    "counter": (_counter, 1.6, 2.6, True, 0.6),
    "fridge": (_fridge, 0.65, 0.75, True, 0.68),
    "plant": (_plant, 0.45, 0.6, True, 0.45),
    "lamp": (_floor_lamp, 0.45, 0.5, True, 0.42),
}
_ROOM_ITEMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    # required, optional, probability of a rug
    "living_room": (("sofa",), ("shelves", "table", "cabinet", "plant", "lamp", "armchair"), 0.8),
    "bedroom": (("bed",), ("wardrobe", "cabinet", "lamp", "plant", "shelves"), 0.7),
    "kitchen": (("counter",), ("fridge", "table", "plant", "shelves"), 0.25),
    "office": (("table",), ("shelves", "cabinet", "plant", "lamp", "armchair"), 0.5),
}


def _free(lo: float, hi: float, taken: list[tuple[float, float]], gap: float = 0.08) -> bool:
    return all(hi + gap <= a or lo - gap >= b for a, b in taken)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int, amount: float) -> FloatImage:
    """Low-frequency multiplicative texture so walls and floors are not perfectly flat fills."""
    small = rng.uniform(1.0 - amount, 1.0 + amount, (cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def build_room(rng: np.random.Generator, cam: Camera, shape: RoomShape, lighting: str) -> RoomLayout:
    """Pick a room type, furnish it and draw its albedo image."""
    name = ROOMS[int(rng.integers(len(ROOMS)))]
    w, h = cam.width, cam.height
    hw, zb, wh = shape.half_width, shape.z_back, shape.wall_height
    zn = 0.3  # "near" depth for planes running towards the camera; projects well outside the frame

    wall = _pick(rng, WALLS, 10)
    ceiling = _jitter(rng, (236, 236, 230), 6)
    floor_kind = int(rng.integers(3))
    floor = _pick(rng, WOODS[:5] if floor_kind == 0 else FLOOR_TILES if floor_kind == 1 else CARPETS, 10)

    image = Image.new("RGB", (w, h), ceiling)
    p = _Painter(cam, image)
    p.quad([(-hw, 0.0, zb), (hw, 0.0, zb), (hw, 0.0, zn), (-hw, 0.0, zn)], floor)
    seam = _scale(floor, 0.78)
    if floor_kind == 0:  # planks running towards the camera, with staggered end joints
        step = float(rng.uniform(0.14, 0.22))
        for i in range(int(2 * hw / step) + 1):
            x = -hw + i * step
            p.line((x, 0.0, zb), (x, 0.0, zn), seam, 1)
            for zj in np.arange(zb - float(rng.uniform(0.3, 1.6)), 1.0, -1.6):
                p.line((x, 0.0, float(zj)), (x + step, 0.0, float(zj)), seam, 1)
    elif floor_kind == 1:  # square tiles
        step = float(rng.uniform(0.3, 0.6))
        for i in range(int(2 * hw / step) + 1):
            p.line((-hw + i * step, 0.0, zb), (-hw + i * step, 0.0, zn), seam, 1)
        for zj in np.arange(zb, 1.0, -step):
            p.line((-hw, 0.0, float(zj)), (hw, 0.0, float(zj)), seam, 1)
    side = _scale(wall, 0.86)
    p.quad([(-hw, 0.0, zb), (-hw, wh, zb), (-hw, wh, zn), (-hw, 0.0, zn)], side)
    p.quad([(hw, 0.0, zb), (hw, wh, zb), (hw, wh, zn), (hw, 0.0, zn)], side)
    p.wall_rect(-hw, hw, 0.0, wh, zb, wall)
    base = _pick(rng, ((240, 240, 236), (90, 70, 50), (200, 190, 170)), 6)
    p.wall_rect(-hw, hw, 0.0, 0.08, zb, base)

    # The strip along the back wall holds everything; people walk in front of the deepest piece.
    required, optional, rug_p = _ROOM_ITEMS[name]
    chosen = list(required) + [
        str(x) for x in rng.permutation(np.asarray(optional))[: int(rng.integers(1, 4))]
    ]
    floor_taken: list[tuple[float, float]] = []
    tall_blocked: list[tuple[float, float]] = []
    windows: list[tuple[float, float, float, float]] = []
    lo, hi = -hw + 0.05, hw - 0.05
    if rng.random() < 0.8:  # door
        dw = float(rng.uniform(0.8, 0.95))
        dx = float(rng.uniform(lo, hi - dw))
        floor_taken.append((dx, dx + dw))
        tall_blocked.append((dx, dx + dw))
        frame = _pick(rng, ((240, 240, 236), *WOODS[:3]), 8)
        p.wall_rect(dx - 0.06, dx + dw + 0.06, 0.0, 2.1, zb, frame)
        p.wall_rect(
            dx, dx + dw, 0.0, 2.04, zb, _scale(frame, 0.92) if rng.random() < 0.5 else _pick(rng, WOODS)
        )
        kx = dx + dw - 0.1 if rng.random() < 0.5 else dx + 0.06
        p.wall_rect(kx, kx + 0.05, 0.98, 1.02, zb, (190, 180, 150))
    for _ in range(int(rng.integers(1, 3)) if rng.random() < 0.9 else 0):  # windows
        ww = float(rng.uniform(0.8, 1.5))
        for _attempt in range(10):
            wx = float(rng.uniform(lo, hi - ww))
            if _free(wx, wx + ww, tall_blocked, 0.25):
                break
        else:
            continue
        tall_blocked.append((wx, wx + ww))
        y0, y1 = float(rng.uniform(0.85, 1.0)), float(rng.uniform(1.9, 2.2))
        p.wall_rect(wx - 0.05, wx + ww + 0.05, y0 - 0.05, y1 + 0.05, zb, (236, 236, 232))
        glass = {"day": (176, 208, 236), "dim": (92, 84, 116), "night": (18, 20, 28)}[lighting]
        p.wall_rect(wx, wx + ww, y0, y1, zb, _jitter(rng, glass, 8))
        if lighting == "day" and rng.random() < 0.6:  # trees or the house opposite outside
            p.wall_rect(
                wx, wx + ww, y0, y0 + (y1 - y0) * 0.35, zb, _pick(rng, ((90, 140, 90), (180, 170, 160)))
            )
        p.line((wx + ww / 2, y0, zb), (wx + ww / 2, y1, zb), (236, 236, 232), 2)
        p.line((wx, (y0 + y1) / 2, zb), (wx + ww, (y0 + y1) / 2, zb), (236, 236, 232), 2)
        if rng.random() < 0.5:  # curtains
            cc = _pick(rng, FABRICS, 20)
            p.wall_rect(wx - 0.22, wx + 0.05, y0 - 0.15, y1 + 0.15, zb, cc)
            p.wall_rect(wx + ww - 0.05, wx + ww + 0.22, y0 - 0.15, y1 + 0.15, zb, cc)
        u0, v0 = cam.project(wx, y1, zb)
        u1, v1 = cam.project(wx + ww, y0, zb)
        windows.append((u0, v0, u1, v1))
    for _ in range(int(rng.integers(0, 3))):  # pictures
        pw = float(rng.uniform(0.3, 0.7))
        px = float(rng.uniform(lo, hi - pw))
        if not _free(px, px + pw, tall_blocked, 0.1):
            continue
        py = float(rng.uniform(1.3, 1.6))
        ph = pw * float(rng.uniform(0.6, 1.2))
        p.wall_rect(px, px + pw, py, py + ph, zb, _pick(rng, ((40, 40, 40), *WOODS[:3]), 8))
        p.wall_rect(px + 0.04, px + pw - 0.04, py + 0.04, py + ph - 0.04, zb, _pick(rng, BOOKS, 40))

    placed: list[tuple[float, float, float, str]] = []
    for item in chosen:
        _, wmin, wmax, tall, depth = _ITEMS[item]
        iw = float(rng.uniform(wmin, wmax))
        for _attempt in range(20):
            ix = float(rng.uniform(lo, hi - iw))
            if _free(ix, ix + iw, floor_taken) and (not tall or _free(ix, ix + iw, tall_blocked, 0.0)):
                floor_taken.append((ix, ix + iw))
                placed.append((depth, ix, ix + iw, item))
                break

    if rng.random() < rug_p:  # flat on the floor, so it may lie under people: no occlusion issue
        rz1 = zb - float(rng.uniform(0.4, 1.2))
        rz0 = max(rz1 - float(rng.uniform(1.2, 2.5)), 2.0)
        rw = float(rng.uniform(1.2, 2.4))
        rx = float(rng.uniform(-hw + 0.3, hw - 0.3 - rw))
        rc = _pick(rng, FABRICS, 25)
        p.quad([(rx, 0.0, rz0), (rx + rw, 0.0, rz0), (rx + rw, 0.0, rz1), (rx, 0.0, rz1)], rc)
        inner = _pick(rng, FABRICS, 25)
        m = 0.12
        p.quad(
            [
                (rx + m, 0.0, rz0 + m),
                (rx + rw - m, 0.0, rz0 + m),
                (rx + rw - m, 0.0, rz1 - m),
                (rx + m, 0.0, rz1 - m),
            ],
            inner,
        )

    lamps: list[tuple[float, float]] = []
    depth = 0.3
    for d, x0, x1, item in sorted(placed):  # shallow (farther front) pieces first: painter's order
        for lx, ly, lz in _ITEMS[item][0](p, rng, x0, x1, zb):
            lamps.append(cam.project(lx, ly, lz))
        depth = max(depth, d)

    albedo = np.asarray(image, dtype=np.float32)
    albedo = albedo * _smooth_noise(rng, w, h, 12, 0.05)[:, :, None]
    return RoomLayout(name, albedo.astype(np.float32), tuple(lamps), tuple(windows), depth)
