"""Assemble a clip's world from its seed and render single frames of it.

Each frame is drawn once, as a *slot map*: a uint8 image where every pixel holds the palette slot
of the figure part covering it (0 = the room). From that one map come both the pixels (slot ->
colour -> lighting) and the ground truth (slot -> track), so boxes are exact by construction:
whatever was painted is what is labelled, including occlusion between people and dogs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from cvcycle.synth.actors import DogTrack, PersonTrack, make_dogs, make_people
from cvcycle.synth.camera import Camera, make_camera
from cvcycle.synth.figures import DARK, DOG_SLOTS, PERSON_SLOTS, dog_parts, person_parts
from cvcycle.synth.lighting import Light, make_light
from cvcycle.synth.model import DOG_LABEL_BASE
from cvcycle.synth.room import RoomLayout, build_room

__all__ = ["World", "build_world", "clip_seed", "draw_slots", "shade_frame"]

SlotMap = npt.NDArray[np.uint8]
Frame = npt.NDArray[np.uint8]
FloatImage = npt.NDArray[np.float32]

_MAX_PEOPLE = 3
_DOG_SLOT0 = 1 + _MAX_PEOPLE * PERSON_SLOTS


def clip_seed(seed: int, lighting: str, dogs: bool, index: int) -> int:
    """A 63-bit seed for clip ``index``: SHA-256 of the arguments, stable across processes and Pythons.

    (Python's ``hash()`` is salted per process, so it must never be used here.)
    """
    key = f"cvcycle.synth/v1|{seed}|{lighting}|{int(dogs)}|{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class World:
    seed: int
    lighting: str
    width: int
    height: int
    fps: int
    num_frames: int
    camera: Camera
    room: RoomLayout
    people: tuple[PersonTrack, ...]
    dogs: tuple[DogTrack, ...]
    light: Light
    palette: FloatImage  # (256, 3) albedo of each slot
    labels: SlotMap  # (256,) slot -> label: track_id for people, DOG_LABEL_BASE + j for dogs, 0 room
    background: FloatImage  # the lit, noise-free room: (H, W, 3), or (H, W) in night mode


def build_world(
    seed: int,
    lighting: str,
    dogs: bool,
    width: int,
    height: int,
    fps: int,
    num_frames: int,
    people: bool = True,
) -> World:
    """The whole scene of one clip; a pure function of its arguments.

    ``people=False`` leaves the room empty of people (dogs only, if any): frames with nothing to
    find, where every detection is a false positive.
    """
    # Independent streams per stage, so e.g. the room's draws do not shift who falls when.
    cam_rng, room_rng, people_rng, dog_rng, light_rng, ir_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    cam, shape = make_camera(cam_rng, width, height)
    room = build_room(room_rng, cam, shape, lighting)
    people_tracks = make_people(people_rng, cam, shape, room.depth, num_frames, fps) if people else ()
    dog_tracks = make_dogs(dog_rng, cam, shape, room.depth, num_frames, fps) if dogs else ()
    light = make_light(light_rng, lighting, width, height, room.lamps, room.windows)

    palette = np.zeros((256, 3), np.float32)
    labels = np.zeros(256, np.uint8)
    for k, person in enumerate(people_tracks):
        base = 1 + k * PERSON_SLOTS
        palette[base : base + PERSON_SLOTS] = person.colours
        labels[base : base + PERSON_SLOTS] = person.track_id
    for dog in dog_tracks:
        base = _DOG_SLOT0 + dog.index * DOG_SLOTS
        palette[base : base + DOG_SLOTS] = dog.colours
        labels[base : base + DOG_SLOTS] = DOG_LABEL_BASE + dog.index
    if light.gray:
        _infrared(ir_rng, palette, len(people_tracks), dog_tracks, light.colour)
    background = light.shade(room.albedo, light.illum, light.glow)
    return World(
        seed,
        lighting,
        width,
        height,
        fps,
        num_frames,
        cam,
        room,
        people_tracks,
        dog_tracks,
        light,
        palette,
        labels,
        background,
    )


def _infrared(
    rng: np.random.Generator, palette: FloatImage, people: int, dogs: tuple[DogTrack, ...], ir: FloatImage
) -> None:
    """Swap the figures' colours for near-infrared reflectances, in place.

    Dyes that look dark or saturated by day can be bright in NIR and the other way round, and skin
    glows pale: clothing colour tells an IR frame almost nothing. Redrawing the clothes' gray levels
    independently of their visible colour makes that part of the night domain shift real.
    """
    for k in range(people):
        base = 1 + k * PERSON_SLOTS
        shirt, pants = rng.uniform(50, 230), rng.uniform(40, 200)
        skin, hair, shoes = rng.uniform(185, 230), rng.uniform(50, 150), rng.uniform(30, 140)
        grays = (shirt, shirt * 0.72, pants, pants * 0.72, skin, skin * 0.8, hair, shoes)
        palette[base : base + PERSON_SLOTS] = np.asarray(grays, np.float32)[:, None]
    for dog in dogs:
        base = _DOG_SLOT0 + dog.index * DOG_SLOTS
        # Fur keeps some of its visible lightness in NIR but reads brighter overall.
        seen = palette[base : base + DOG_SLOTS] @ ir
        lift = np.float32(rng.uniform(-20, 60))
        palette[base : base + DOG_SLOTS] = np.clip(seen + lift, 20, 240)[:, None]
        palette[base + DARK] = 35.0  # the nose stays dark


def draw_slots(world: World, t: int) -> SlotMap:
    """Paint every figure of frame ``t`` into a slot map, far to near (painter's algorithm)."""
    cam = world.camera
    figures: list[tuple[float, int, list[tuple[int, npt.NDArray[np.float64]]], float, int, int]] = []
    for k, person in enumerate(world.people):
        pose = person.poses[t]
        parts = person_parts(person.look, pose)
        figures.append((float(person.z[t]), k, parts, float(person.x[t]), 1 + k * PERSON_SLOTS, pose.facing))
    for dog in world.dogs:
        dpose = dog.poses[t]
        parts = dog_parts(dog.look, dpose)
        base = _DOG_SLOT0 + dog.index * DOG_SLOTS
        figures.append((float(dog.z[t]), 10 + dog.index, parts, float(dog.x[t]), base, dpose.facing))
    # Farther first; ties broken by a fixed id so the order never depends on sort stability quirks.
    figures.sort(key=lambda f: (-f[0], f[1]))

    image = Image.new("L", (world.width, world.height), 0)
    draw = ImageDraw.Draw(image)
    for z, _, parts, x, base, facing in figures:
        scale = cam.f / z  # pixels per metre at the figure's depth
        u0 = cam.cx + scale * x
        v0 = cam.floor_y(z)
        for slot, poly in parts:
            pts = np.empty_like(poly)
            pts[:, 0] = u0 + (scale * facing) * poly[:, 0]
            pts[:, 1] = v0 - scale * poly[:, 1]
            draw.polygon(pts.ravel().tolist(), fill=base + slot)
    return np.asarray(image, dtype=np.uint8)


def shade_frame(world: World, t: int, slots: SlotMap) -> Frame:
    """Colour, light and add sensor noise to the slot map of frame ``t``; returns RGB uint8."""
    light = world.light
    lit = world.background.copy()
    rows, cols = np.nonzero(slots)
    if rows.size:
        # Relight only the figure pixels: a few percent of the frame, so much cheaper than all of it.
        albedo = world.palette[slots[rows, cols]]
        lit[rows, cols] = light.shade(albedo, light.illum[rows, cols], light.glow[rows, cols])
    # Per-frame noise seeded by (clip seed, frame), so any frame renders alone and identically.
    rng = np.random.default_rng([world.seed, t, 0x5E45])
    return light.finish(lit, rng)
