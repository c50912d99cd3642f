"""Articulated people and dogs as lists of small polygons in body-local metres.

Every part is a polygon (capsules for limbs, polygonal ellipses for heads and bodies) rather than a
PIL ellipse, because PIL ellipses are axis-aligned and a falling body or a rearing dog must rotate.
Local coordinates: x forward (the way the figure faces), y up, origin on the floor under the figure;
the renderer mirrors by ``facing`` and projects to pixels. Each part carries a palette *slot* so the
renderer can colour it and attribute its pixels to the right track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DOG_SLOTS",
    "PERSON_SLOTS",
    "DogLook",
    "DogPose",
    "PersonLook",
    "PersonPose",
    "capsule",
    "dog_parts",
    "ellipse",
    "person_parts",
]

Poly = npt.NDArray[np.float64]  # (k, 2) polygon vertices
Part = tuple[int, Poly]  # (palette slot within the figure, polygon)

# Palette slots of a person; "far" variants are the limbs on the far side of the body, drawn darker
# so a walking figure shows which leg is which (and so the detector sees articulation, not a blob).
SHIRT, SHIRT_FAR, PANTS, PANTS_FAR, SKIN, SKIN_FAR, HAIR, SHOES = range(8)
PERSON_SLOTS = 8
# Palette slots of a dog.
COAT, COAT_FAR, DARK, CHEST = range(4)
DOG_SLOTS = 4

_CAP = np.linspace(-math.pi / 2, math.pi / 2, 5)  # half-circle samples of a capsule end


def capsule(p0: tuple[float, float], p1: tuple[float, float], r: float) -> Poly:
    """A stadium from ``p0`` to ``p1`` of radius ``r``: a limb with rounded joints."""
    a = math.atan2(p1[1] - p0[1], p1[0] - p0[0])
    end1 = a + _CAP
    end0 = a + math.pi + _CAP
    xs = np.concatenate([p1[0] + r * np.cos(end1), p0[0] + r * np.cos(end0)])
    ys = np.concatenate([p1[1] + r * np.sin(end1), p0[1] + r * np.sin(end0)])
    return np.stack([xs, ys], axis=1)


def ellipse(
    c: tuple[float, float],
    a: float,
    b: float,
    rot: float = 0.0,
    start: float = 0.0,
    stop: float = 2 * math.pi,
) -> Poly:
    """A polygonal ellipse (or the arc ``start..stop`` closed by its chord) rotated by ``rot``."""
    n = max(6, round(18 * (stop - start) / (2 * math.pi)))
    t = np.linspace(start, stop, n, endpoint=(stop - start) < 2 * math.pi)
    x, y = a * np.cos(t), b * np.sin(t)
    cr, sr = math.cos(rot), math.sin(rot)
    return np.stack([c[0] + x * cr - y * sr, c[1] + x * sr + y * cr], axis=1)


def _dir(angle: float) -> tuple[float, float]:
    """Unit vector of a limb hanging ``angle`` radians forward from straight down."""
    return math.sin(angle), -math.cos(angle)


def _add(p: tuple[float, float], d: tuple[float, float], length: float) -> tuple[float, float]:
    return p[0] + d[0] * length, p[1] + d[1] * length


def _rotate(parts: list[Part], pivot: tuple[float, float], angle: float) -> list[Part]:
    """Rotate parts counter-clockwise by ``angle`` radians about ``pivot``."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # row-vector form of the CCW rotation matrix
    piv = np.asarray(pivot)
    return [(slot, (poly - piv) @ rot + piv) for slot, poly in parts]


@dataclass(frozen=True)
class PersonLook:
    """Per-person constants: size in metres and body shape (colours live in the renderer's palette)."""

    height_m: float
    build: float  # width multiplier of torso and limbs, ~0.85 slim .. 1.25 broad
    long_sleeves: bool
    lie_arm: float  # radians; where the near arm ends up once lying, so fallen poses vary


@dataclass(frozen=True)
class PersonPose:
    """Per-frame state of a person."""

    facing: int  # +1 faces image right, -1 left
    phase: float  # gait phase in radians
    gait: float  # 0 standing .. 1 full walking swing
    fall: float  # fall progress 0 upright .. 1 lying
    fall_angle: float  # final body rotation in radians (~pi/2); positive falls forward (towards facing)
    wiggle: float  # small arm movement while lying, radians


def person_parts(look: PersonLook, pose: PersonPose) -> list[Part]:
    """Polygons of one person, in metres, back-to-front so later parts cover earlier ones."""
    b = look.build
    g = pose.gait
    p = pose.fall
    swing = math.radians(28.0) * g
    hip = (0.0, 0.52)
    shoulder = (0.0, 0.815)
    bend = math.radians(25.0) * 4.0 * p * (1.0 - p)  # knees give way mid-fall, straight again when down

    def leg(psi: float, near: bool) -> list[Part]:
        thigh = swing * math.sin(psi)
        flex = math.radians(40.0) * g * max(0.0, math.cos(psi)) + bend  # knee bends while swinging through
        knee = _add(hip, _dir(thigh), 0.255)
        shin = thigh - flex
        ankle = _add(knee, _dir(shin), 0.245)
        toe = _add(ankle, (math.cos(shin), math.sin(shin)), 0.075)
        pants = PANTS if near else PANTS_FAR
        return [
            (pants, capsule(hip, knee, 0.058 * b)),
            (pants, capsule(knee, ankle, 0.045 * b)),
            (SHOES, capsule(ankle, toe, 0.028)),
        ]

    def arm(psi: float, near: bool) -> list[Part]:
        upper = -0.8 * swing * math.sin(psi)
        elbow = math.radians(12.0) + math.radians(25.0) * g * max(0.0, -math.sin(psi))
        # Falling: arms fly out to break the fall, then settle where they landed.
        lie = (look.lie_arm if near else math.radians(25.0)) + pose.wiggle
        settle = min(1.0, max(0.0, (p - 0.6) / 0.4))
        reach = math.radians(120.0) * (1.0 - settle) + lie * settle
        upper = upper + (reach - upper) * min(1.0, p * 1.6)
        elbow = elbow * (1.0 - min(1.0, p))
        fore = upper + elbow
        el = _add(shoulder, _dir(upper), 0.17)
        wrist = _add(el, _dir(fore), 0.15)
        sleeve, skin = (SHIRT, SKIN) if near else (SHIRT_FAR, SKIN_FAR)
        return [
            (sleeve, capsule(shoulder, el, 0.036 * b)),
            (sleeve if look.long_sleeves else skin, capsule(el, wrist, 0.03 * b)),
            (skin, ellipse(_add(wrist, _dir(fore), 0.025), 0.028, 0.028)),
        ]

    torso = np.array(
        [
            [-0.075 * b, 0.83],
            [-0.06 * b, 0.852],
            [0.05 * b, 0.852],
            [0.068 * b, 0.83],
            [0.062 * b, 0.56],
            [-0.07 * b, 0.56],
        ]
    )
    pelvis = np.array([[-0.072 * b, 0.6], [0.066 * b, 0.6], [0.066 * b, 0.47], [-0.072 * b, 0.47]])
    head_c = (0.012, 0.925)
    parts: list[Part] = []
    parts += arm(pose.phase + math.pi, near=False)
    parts += leg(pose.phase + math.pi, near=False)
    parts.append((PANTS, pelvis))
    parts += leg(pose.phase, near=True)
    parts.append((SHIRT, torso))
    parts.append((SKIN, capsule((0.0, 0.83), (0.008, 0.875), 0.026)))
    parts.append((SKIN, ellipse(head_c, 0.056, 0.068)))
    parts.append((HAIR, ellipse((head_c[0] - 0.006, head_c[1] + 0.01), 0.06, 0.063, 0.0, 0.35, 3.55)))
    parts += arm(pose.phase, near=True)

    # Stand on the lowest foot, so swinging legs make the body bob like a real gait.
    lowest = min(float(poly[:, 1].min()) for slot, poly in parts if slot == SHOES)
    h = look.height_m
    scaled = [(slot, (poly - (0.0, lowest)) * h) for slot, poly in parts]
    if p > 0.0:
        # Sideways fall pivoting on the feet; gravity makes the angle grow quadratically in time.
        scaled = _rotate(scaled, (0.0, 0.0), -pose.fall_angle * p * p)
        bottom = min(float(poly[:, 1].min()) for _, poly in scaled)
        if bottom < 0.0:
            # Lying bodies rest *on* the floor line rather than sinking half into it.
            scaled = [(slot, poly - (0.0, bottom * min(1.0, p * p))) for slot, poly in scaled]
    return scaled


@dataclass(frozen=True)
class DogLook:
    """Per-dog constants."""

    length_m: float  # nose-to-rump, sets the scale of every part
    stocky: float  # body thickness multiplier
    tail_up: float  # radians of tail carriage


@dataclass(frozen=True)
class DogPose:
    """Per-frame state of a dog."""

    facing: int
    phase: float
    gait: float
    rear: float  # radians the front of the body is lifted about the hind hips (0 on four legs)
    wag: float  # tail phase


def dog_parts(look: DogLook, pose: DogPose) -> list[Part]:
    """Polygons of one dog, in metres; rearing dogs stand on their hind legs, roughly person-shaped."""
    t = look.stocky
    swing = math.radians(26.0) * pose.gait
    hind_hip = (-0.25, 0.42)
    front_hip = (0.24, 0.44)

    def limb(hip: tuple[float, float], psi: float, near: bool, dangle: float = 0.0) -> list[Part]:
        a = swing * math.sin(psi) + dangle
        knee = _add(hip, _dir(a), 0.2)
        paw = _add(knee, _dir(a - 0.25 * swing * math.cos(psi) + 1.5 * dangle), 0.21)
        slot = COAT if near else COAT_FAR
        return [(slot, capsule(hip, knee, 0.05 * t)), (slot, capsule(knee, paw, 0.04 * t))]

    # Rearing rotates the front legs backwards with the body; turning them back by ~0.4 rad leaves
    # the paws hanging forward-down in front of the chest, like a begging dog.
    dangle = -0.4 * min(1.0, pose.rear / 1.1)
    tail_a = look.tail_up + 0.3 * math.sin(pose.wag)
    tail_end = (-0.36 - 0.24 * math.cos(tail_a), 0.5 + 0.24 * math.sin(tail_a))
    front_far = limb(front_hip, pose.phase + math.pi, near=False, dangle=dangle)
    upper: list[Part] = [
        (COAT, capsule((-0.35, 0.5), tail_end, 0.028 * t)),
        *front_far,
        (COAT, ellipse((-0.02, 0.45), 0.35, 0.13 * t)),
        (CHEST, ellipse((0.2, 0.44), 0.15, 0.15 * t)),
        (COAT, capsule((0.26, 0.52), (0.4, 0.66), 0.075 * t)),
        (COAT, ellipse((0.46, 0.7), 0.105, 0.09)),
        (COAT, capsule((0.5, 0.675), (0.62, 0.65), 0.045)),
        (DARK, ellipse((0.64, 0.66), 0.025, 0.022)),
        (COAT_FAR, np.array([[0.39, 0.77], [0.46, 0.77], [0.41, 0.6], [0.37, 0.63]])),
        *limb(front_hip, pose.phase, near=True, dangle=dangle),
    ]
    if pose.rear > 0.0:
        upper = _rotate(upper, hind_hip, pose.rear)
    parts = limb(hind_hip, pose.phase, near=False) + upper + limb(hind_hip, pose.phase + math.pi, near=True)
    # Stand on the hind paws (the lowest points) whatever the pose.
    lowest = min(float(poly[:, 1].min()) for _, poly in parts)
    s = look.length_m
    return [(slot, (poly - (0.0, lowest)) * s) for slot, poly in parts]
