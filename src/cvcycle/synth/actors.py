"""People and dogs: their looks and their motion over the whole clip, simulated up front.

Motion is simulated in metres on the floor (wander between random waypoints, pause now and then)
and stored per frame, so any frame can be rendered on its own and ground truth never depends on
rendering order. People stay inside a convex walkable region in front of the furniture strip, which
keeps straight walks inside it and every standing person fully in frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvcycle.synth.camera import Camera, RoomShape
from cvcycle.synth.figures import DogLook, DogPose, PersonLook, PersonPose

__all__ = ["DogTrack", "PersonTrack", "make_dogs", "make_people"]

RGB = tuple[int, int, int]
Floats = npt.NDArray[np.float64]

SHIRTS: tuple[RGB, ...] = (
    (190, 40, 40),
    (40, 80, 170),
    (50, 130, 70),
    (230, 230, 225),
    (35, 35, 38),
    (128, 128, 130),
    (220, 190, 60),
    (30, 40, 80),
    (120, 80, 50),
    (220, 140, 160),
    (110, 60, 130),
    (220, 120, 40),
    (40, 130, 130),
    (200, 180, 140),
)
PANTS: tuple[RGB, ...] = (
    (50, 70, 110),
    (35, 45, 70),
    (30, 30, 32),
    (170, 150, 110),
    (100, 100, 105),
    (100, 75, 55),
    (200, 185, 150),
)
SKINS: tuple[RGB, ...] = ((240, 200, 170), (225, 180, 140), (200, 150, 110), (160, 110, 75), (120, 80, 55))
HAIRS: tuple[RGB, ...] = (
    (25, 20, 18),
    (60, 40, 25),
    (110, 75, 45),
    (210, 180, 110),
    (160, 160, 160),
    (150, 70, 35),
)
SHOES: tuple[RGB, ...] = ((30, 30, 30), (230, 230, 230), (100, 70, 50), (60, 60, 70), (180, 40, 40))
# Coats deliberately overlap clothing colours (brown, black, white, grey, beige): dogs are meant to
# be hard negatives for a person detector, not separable by colour alone.
COATS: tuple[RGB, ...] = (
    (120, 75, 40),
    (30, 28, 26),
    (230, 228, 220),
    (125, 125, 125),
    (200, 160, 105),
    (210, 165, 90),
    (70, 45, 30),
)

FALLEN_ANGLE = math.radians(60.0)  # "mostly horizontal": the class flips to fallen_person here


def _colour(rng: np.random.Generator, options: tuple[RGB, ...], amount: int = 14) -> RGB:
    base = np.asarray(options[int(rng.integers(len(options)))])
    c = np.clip(base + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _dark(c: RGB, k: float = 0.72) -> RGB:
    return round(c[0] * k), round(c[1] * k), round(c[2] * k)


@dataclass(frozen=True)
class PersonTrack:
    track_id: int
    look: PersonLook
    colours: tuple[RGB, ...]  # one per figures.PERSON_SLOTS slot
    x: Floats  # (num_frames,) floor position, metres
    z: Floats
    poses: tuple[PersonPose, ...]
    fallen: npt.NDArray[np.bool_]  # (num_frames,) class is fallen_person
    fall: tuple[int, int] | None  # the fall Segment's inclusive frame range


@dataclass(frozen=True)
class DogTrack:
    index: int
    look: DogLook
    colours: tuple[RGB, ...]  # one per figures.DOG_SLOTS slot
    x: Floats
    z: Floats
    poses: tuple[DogPose, ...]


class _Region:
    """Convex walkable floor region: depth band in front of the furniture, narrowing towards the camera."""

    def __init__(self, cam: Camera, shape: RoomShape, furniture_depth: float, margin: float) -> None:
        self.cam = cam
        self.shape = shape
        self.margin = margin
        # Nearest depth whose floor row is still inside the frame, with a few pixels to spare.
        self.z_min = cam.depth_of_row(cam.height * 0.965)
        self.z_max = max(self.z_min + 0.5, shape.z_back - furniture_depth - 0.3)

    def x_limit(self, z: float) -> float:
        return max(0.05, min(self.shape.half_width - self.margin, self.cam.half_view(z) - self.margin))

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        z = float(rng.uniform(self.z_min, self.z_max))
        lim = self.x_limit(z)
        return float(rng.uniform(-lim, lim)), z


@dataclass
class _Path:
    x: Floats
    z: Floats
    step: Floats  # metres moved into each frame
    facing: npt.NDArray[np.int8]
    pauses: list[tuple[int, int]]  # [start, end) frame ranges of standing still


def _wander(
    rng: np.random.Generator,
    num_frames: int,
    fps: int,
    speed: float,
    sample: Callable[[np.random.Generator], tuple[float, float]],
    pause_p: float,
    pause_s: tuple[float, float],
) -> _Path:
    """Walk between random waypoints at ``speed`` m/s, sometimes pausing on arrival."""
    pos = sample(rng)
    target = sample(rng)
    facing = 1 if rng.random() < 0.5 else -1
    pause = int(rng.uniform(*pause_s) * fps) if rng.random() < pause_p * 0.5 else 0
    xs, zs, steps = np.empty(num_frames), np.empty(num_frames), np.zeros(num_frames)
    faces = np.empty(num_frames, dtype=np.int8)
    pauses: list[tuple[int, int]] = []
    if pause:
        pauses.append((0, pause))
    step = speed / fps
    for t in range(num_frames):
        if pause > 0:
            pause -= 1
        else:
            dx, dz = target[0] - pos[0], target[1] - pos[1]
            dist = math.hypot(dx, dz)
            if dist <= step:
                pos, moved = target, dist
                target = sample(rng)
                if rng.random() < pause_p:
                    pause = max(1, int(rng.uniform(*pause_s) * fps))
                    pauses.append((t + 1, t + 1 + pause))
            else:
                pos, moved = (pos[0] + dx / dist * step, pos[1] + dz / dist * step), step
            steps[t] = moved
            # Turn only on clear sideways motion, so walking straight at the camera does not flicker.
            if abs(dx) > 0.25 * dist and moved > 0:
                facing = 1 if dx > 0 else -1
        xs[t], zs[t], faces[t] = pos[0], pos[1], facing
    return _Path(xs, zs, steps, faces, pauses)


def _gait(moving: npt.NDArray[np.bool_], fps: int) -> Floats:
    """Swing amplitude easing in and out over ~0.3 s, so starts and stops are not instant."""
    rate = min(1.0, 3.5 / fps)
    g = np.empty(len(moving))
    level = float(moving[0])
    for t, m in enumerate(moving):
        level += float(np.clip(float(m) - level, -rate, rate))
        g[t] = level
    return g


def make_people(
    rng: np.random.Generator, cam: Camera, shape: RoomShape, furniture_depth: float, num_frames: int, fps: int
) -> tuple[PersonTrack, ...]:
    """1-3 people; each falls with probability 1/2, and most clips get at least one fall."""
    region = _Region(cam, shape, furniture_depth, margin=0.35)
    count = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    falls = [bool(rng.random() < 0.5) for _ in range(count)]
    if not any(falls) and rng.random() < 0.85:
        falls[int(rng.integers(count))] = True
    people = []
    for k in range(count):
        child = rng.random() < 0.12
        height = float(rng.uniform(1.05, 1.35) if child else rng.uniform(1.55, 1.92))
        look = PersonLook(
            height_m=height,
            build=float(rng.uniform(0.85, 1.25)),
            long_sleeves=bool(rng.random() < 0.55),
            lie_arm=math.radians(float(rng.uniform(100.0, 170.0))),
        )
        shirt, pants = _colour(rng, SHIRTS), _colour(rng, PANTS)
        skin, hair, shoes = _colour(rng, SKINS, 8), _colour(rng, HAIRS, 10), _colour(rng, SHOES, 10)
        colours = (shirt, _dark(shirt), pants, _dark(pants), skin, _dark(skin, 0.8), hair, shoes)
        speed = float(rng.uniform(0.8, 1.4)) * (0.8 if child else 1.0)
        path = _wander(rng, num_frames, fps, speed, region.sample, 0.35, (0.5, 2.0))
        people.append(_person_motion(rng, k + 1, look, colours, path, falls[k], region, num_frames, fps))
    return tuple(people)


def _person_motion(
    rng: np.random.Generator,
    track_id: int,
    look: PersonLook,
    colours: tuple[RGB, ...],
    path: _Path,
    falls: bool,
    region: _Region,
    num_frames: int,
    fps: int,
) -> PersonTrack:
    fall_frames = max(3, round(float(rng.uniform(0.4, 0.8)) * fps))
    after = max(2, round(0.3 * fps))  # the Segment runs a few frames past touching down
    lying_min = max(3, round(0.5 * fps))
    first = round(0.15 * num_frames)
    last = num_frames - fall_frames - after - lying_min
    start = int(rng.integers(first, last + 1)) if falls and last >= first else None
    wiggle_amp = float(rng.uniform(0.0, 0.25))
    wiggle_hz = float(rng.uniform(0.2, 0.6))

    x, z, facing = path.x.copy(), path.z.copy(), path.facing.copy()
    moving = path.step > 0
    progress = np.zeros(num_frames)
    fall_angle = 0.0
    segment = None
    if start is not None:
        # The person stops where they were and goes down; they stay down until the clip ends.
        x[start:], z[start:], facing[start:] = x[start], z[start], facing[start]
        moving[start:] = False
        progress[start:] = np.minimum(1.0, (np.arange(num_frames - start) + 1) / fall_frames)
        fall_angle = _fall_direction(rng, look, float(x[start]), float(z[start]), int(facing[start]), region)
        down = start + fall_frames - 1
        segment = (start, min(num_frames - 1, down + after))
    gait = _gait(moving, fps)
    phase = float(rng.uniform(0, 2 * math.pi)) + 2 * math.pi * np.cumsum(path.step) / (0.82 * look.height_m)
    poses = []
    for t in range(num_frames):
        p = float(progress[t])
        g = float(gait[t]) * (1.0 - p)
        wiggle = wiggle_amp * math.sin(2 * math.pi * wiggle_hz * t / fps) if p >= 1.0 else 0.0
        poses.append(PersonPose(int(facing[t]), float(phase[t]), g, p, fall_angle, wiggle))
    fallen = np.abs(fall_angle) * progress**2 >= FALLEN_ANGLE
    return PersonTrack(track_id, look, colours, x, z, tuple(poses), fallen, segment)


def _fall_direction(
    rng: np.random.Generator, look: PersonLook, x: float, z: float, facing: int, region: _Region
) -> float:
    """Signed final body angle; positive falls the way the person faces.

    Prefer a forward fall, but fall the other way if the body would not fit in the frame, so a
    lying person is mostly visible (boxes are clipped to the frame either way).
    """
    angle = math.radians(float(rng.uniform(84.0, 94.0)))
    reach = 1.15 * look.height_m  # body plus an arm stretched beyond the head
    lo, hi = region.cam.view_limits(z)
    room = {1: hi - 0.05 - x, -1: x - lo - 0.05}  # metres free towards image +x and -x
    preferred = facing if rng.random() < 0.7 else -facing
    if room[preferred] >= reach:
        direction = preferred
    elif room[-preferred] >= reach:
        direction = -preferred
    else:
        direction = max((1, -1), key=lambda d: room[d])
    return angle * direction * facing


def make_dogs(
    rng: np.random.Generator, cam: Camera, shape: RoomShape, furniture_depth: float, num_frames: int, fps: int
) -> tuple[DogTrack, ...]:
    """1-2 dogs that trot around, pause, and often rear up on their hind legs while paused."""
    region = _Region(cam, shape, furniture_depth, margin=0.6)
    count = int(rng.choice([1, 2], p=[0.65, 0.35]))
    dogs = []
    for j in range(count):
        look = DogLook(
            length_m=float(rng.uniform(0.55, 0.95)),
            stocky=float(rng.uniform(0.85, 1.2)),
            tail_up=float(rng.uniform(0.3, 1.0)),
        )
        coat = _colour(rng, SHIRTS if rng.random() < 0.3 else COATS, 12)
        chest = _colour(rng, ((235, 232, 225),), 8) if rng.random() < 0.4 else coat
        colours = (coat, _dark(coat, 0.75), (25, 20, 20), chest)
        speed = float(rng.uniform(0.6, 1.6))
        path = _wander(rng, num_frames, fps, speed, region.sample, 0.55, (0.8, 3.0))
        rear = np.zeros(num_frames)
        long_pauses = [(a, b) for a, b in path.pauses if b - a >= 0.8 * fps and a < num_frames]
        rearing = [pz for pz in long_pauses if rng.random() < 0.55]
        if not rearing and long_pauses and rng.random() < 0.7:
            rearing = [max(long_pauses, key=lambda pz: pz[1] - pz[0])]
        ramp = max(1, round(0.3 * fps))
        for a, b in rearing:
            top = float(rng.uniform(1.05, 1.35))  # 60-77 degrees: upright enough to look person-ish
            for t in range(a, min(b, num_frames)):
                rear[t] = top * min(1.0, (t - a + 1) / ramp, (b - t) / ramp)
        moving = path.step > 0
        gait = _gait(moving, fps)
        phase = float(rng.uniform(0, 2 * math.pi)) + 2 * math.pi * np.cumsum(path.step) / (
            1.2 * look.length_m
        )
        wag0, wag_hz = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(1.5, 3.0))
        poses = tuple(
            DogPose(
                int(path.facing[t]),
                float(phase[t]),
                float(gait[t]),
                float(rear[t]),
                wag0 + 2 * math.pi * wag_hz * t / fps,
            )
            for t in range(num_frames)
        )
        dogs.append(DogTrack(j, look, colours, path.x, path.z, poses))
    return tuple(dogs)
