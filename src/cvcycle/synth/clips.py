"""The public face of the synthetic world: generate clip specs, render them, write them as MP4.

``generate_clips`` builds each clip's world and renders only its slot maps to compute the exact
ground truth; ``render_frames`` rebuilds the same world from the spec and renders the pixels.
Both are pure functions of their arguments, so a spec is a compact, reproducible stand-in for a
video: store the spec, re-render the clip anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvcycle.errors import InvalidInput
from cvcycle.media import write_video
from cvcycle.synth.model import LIGHTING, Box, ClipSpec, Segment
from cvcycle.synth.render import World, build_world, clip_seed, draw_slots, shade_frame

__all__ = [
    "MIN_BOX_PIXELS",
    "generate_clips",
    "render_frame",
    "render_frames",
    "render_label_frame",
    "render_label_frames",
    "write_clip",
]

# A person with fewer visible pixels than this (hidden behind someone) gets no box: nobody could
# label it and no detector should be blamed for missing it.
MIN_BOX_PIXELS = 30
GENERATOR = "cvcycle.synth/1"
_MAX_FRAMES = 10 * 60 * 120  # ten minutes at 120 fps: anything longer is a typo, not a clip


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _check(lighting: object, width: object, height: object, fps: object, num_frames: int) -> None:
    if not isinstance(lighting, str) or lighting not in LIGHTING:
        raise InvalidInput(f"unknown lighting {lighting!r}", hint=f"use one of {', '.join(LIGHTING)}")
    w, h = _int_in("width", width, 64, 4096), _int_in("height", height, 48, 4096)
    _int_in("fps", fps, 1, 120)
    if w % 2 or h % 2:
        # H.264 in yuv420p (what every player takes) subsamples chroma by 2 in both directions.
        raise InvalidInput(f"width and height must be even for H.264 video, got {w}x{h}")
    if not 1 <= num_frames <= _MAX_FRAMES:
        raise InvalidInput(f"a clip must have 1 to {_MAX_FRAMES} frames, got {num_frames}")


def generate_clips(
    n: int,
    lighting: str,
    dogs: bool = False,
    seed: int = 0,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 10,
    seconds: float = 8.0,
    empty_share: float = 0.0,
) -> list[ClipSpec]:
    """``n`` clip specs with exact ground truth; clip ``i`` depends only on ``(seed, lighting, dogs, i)``
    (and the frame geometry), so asking for more clips never changes the first ones.

    ``empty_share`` of the clips (every ``1/empty_share``-th, rounded) show the room with no
    people: frames where any detection is false, to measure false positives per frame.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInput(f"seed must be an integer, got {seed!r}")
    if not isinstance(dogs, bool):
        raise InvalidInput(f"dogs must be True or False, got {dogs!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < math.inf:
        raise InvalidInput(f"seconds must be a positive number, got {seconds!r}")
    if isinstance(empty_share, bool) or not isinstance(empty_share, int | float) or not 0 <= empty_share <= 1:
        raise InvalidInput(f"empty_share must be a number from 0 to 1, got {empty_share!r}")
    num_frames = round(seconds * fps) if isinstance(fps, int) and not isinstance(fps, bool) else 0
    _check(lighting, width, height, fps, num_frames)
    specs = []
    for i in range(n):
        cseed = clip_seed(seed, lighting, dogs, i)
        # Spread evenly: clip i is empty when the running count of empty clips steps up at i.
        empty = math.floor((i + 1) * empty_share + 1e-9) > math.floor(i * empty_share + 1e-9)
        world = build_world(cseed, lighting, dogs, width, height, fps, num_frames, people=not empty)
        name = f"{lighting}{'-dogs' if dogs else ''}{'-empty' if empty else ''}-s{seed}-c{i}"
        specs.append(_spec(world, name, dogs, people=not empty))
    return specs


def _spec(world: World, name: str, dogs: bool, people: bool = True) -> ClipSpec:
    boxes: list[Box] = []
    for t in range(world.num_frames):
        labels = world.labels[draw_slots(world, t)]
        for person in world.people:
            box = _mask_box(labels == person.track_id)
            if box is not None:
                cls = "fallen_person" if person.fallen[t] else "person"
                boxes.append(Box(t, cls, *box, track_id=person.track_id))
    segments = tuple(
        Segment("fall", p.fall[0], p.fall[1], p.track_id) for p in world.people if p.fall is not None
    )
    attributes = {
        "lighting": world.lighting,
        "dogs": "yes" if dogs else "no",
        "scene": world.room.name,
        "synthetic": "yes",
        "people": str(len(world.people)),
        "falls": str(len(segments)),
        "dog_count": str(len(world.dogs)),
        "generator": GENERATOR,
    }
    return ClipSpec(
        name=name,
        seed=world.seed,
        lighting=world.lighting,
        dogs=dogs,
        width=world.width,
        height=world.height,
        fps=world.fps,
        num_frames=world.num_frames,
        boxes=tuple(boxes),
        segments=segments,
        attributes=attributes,
        people=people,
    )


def _mask_box(mask: npt.NDArray[np.bool_]) -> tuple[float, float, float, float] | None:
    """Tight pixel extent ``x, y, w, h`` of a mask, or None when too little of it is visible."""
    if int(np.count_nonzero(mask)) < MIN_BOX_PIXELS:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, y0 = int(cols[0]), int(rows[0])
    return float(x0), float(y0), float(int(cols[-1]) - x0 + 1), float(int(rows[-1]) - y0 + 1)


def _world(spec: ClipSpec) -> World:
    _check(spec.lighting, spec.width, spec.height, spec.fps, spec.num_frames)
    return build_world(
        spec.seed,
        spec.lighting,
        spec.dogs,
        spec.width,
        spec.height,
        spec.fps,
        spec.num_frames,
        people=spec.people,
    )


def render_frames(spec: ClipSpec) -> Iterator[npt.NDArray[np.uint8]]:
    """The clip's frames, ``(height, width, 3)`` uint8 RGB, bit-identical for the same spec."""
    world = _world(spec)
    for t in range(world.num_frames):
        yield shade_frame(world, t, draw_slots(world, t))


def render_frame(spec: ClipSpec, index: int) -> npt.NDArray[np.uint8]:
    """Frame ``index`` alone (same pixels as the ``index``-th frame of ``render_frames``)."""
    world = _world(spec)
    if not 0 <= index < world.num_frames:
        raise InvalidInput(f"frame {index} is outside clip {spec.name!r} of {world.num_frames} frames")
    return shade_frame(world, index, draw_slots(world, index))


def render_label_frames(spec: ClipSpec) -> Iterator[npt.NDArray[np.uint8]]:
    """Debugging masks, ``(height, width)`` uint8 per frame: a person's pixels hold its ``track_id``,
    dog ``j``'s pixels ``DOG_LABEL_BASE + j``, the room 0. The boxes are the extents of these."""
    world = _world(spec)
    for t in range(world.num_frames):
        yield world.labels[draw_slots(world, t)]


def render_label_frame(spec: ClipSpec, index: int) -> npt.NDArray[np.uint8]:
    """The label mask of frame ``index`` alone; see ``render_label_frames``."""
    world = _world(spec)
    if not 0 <= index < world.num_frames:
        raise InvalidInput(f"frame {index} is outside clip {spec.name!r} of {world.num_frames} frames")
    return world.labels[draw_slots(world, index)]


def write_clip(spec: ClipSpec, path: Path) -> Path:
    """Render the clip to an H.264 MP4 at ``path`` (written atomically, parents created) and return it.

    The frames fed to the encoder are bit-identical for the same spec; whether the MP4 bytes are
    too is up to ``cvcycle.media.write_video`` and the H.264 encoder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(render_frames(spec), path, spec.fps)
    return path
