"""The vocabulary and ground-truth records of the synthetic home-camera world.

These are plain frozen dataclasses so the rest of cvcycle (importers, the demo, the tests) can read
a clip's truth without touching numpy or the renderer. Coordinates are pixels of the rendered frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ACTIONS", "CLASSES", "DOG_LABEL_BASE", "LIGHTING", "Box", "ClipSpec", "Segment"]

CLASSES: tuple[str, ...] = ("person", "fallen_person")
ACTIONS: tuple[str, ...] = ("fall",)
LIGHTING: tuple[str, ...] = ("day", "dim", "night")

# In the label maps of ``render_label_frames`` a person's pixels carry its ``track_id`` (1, 2, 3) and
# dog j's pixels carry ``DOG_LABEL_BASE + j``; 0 is the room. Far apart so the two never collide.
DOG_LABEL_BASE = 200


@dataclass(frozen=True)
class Box:
    """One visible person in one frame.

    ``x, y`` is the top-left corner and ``w, h`` the size of the tight pixel extent of the rendered
    body: the box covers pixel columns ``x .. x+w-1`` and rows ``y .. y+h-1`` (so the values are
    whole numbers), always inside the frame. Computed from the rendered mask, so occlusion by another
    person or a dog in front shrinks it to what is really visible.
    """

    frame_index: int
    cls: str
    x: float
    y: float
    w: float
    h: float
    track_id: int


@dataclass(frozen=True)
class Segment:
    """An action of one track over the inclusive frame range ``start_frame .. end_frame``."""

    cls: str
    start_frame: int
    end_frame: int
    track_id: int


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to re-render one clip bit-identically, plus its exact ground truth.

    The scene itself (room, people, dogs, motion) is a pure function of ``seed, lighting, dogs,
    width, height, fps, num_frames``; ``boxes`` and ``segments`` were computed from it.
    """

    name: str
    seed: int
    lighting: str
    dogs: bool
    width: int
    height: int
    fps: int
    num_frames: int
    boxes: tuple[Box, ...]
    segments: tuple[Segment, ...]
    # Left out of the hash (dicts are unhashable) so specs can still be set members and dict keys.
    attributes: dict[str, str] = field(hash=False)
    people: bool = True  # False: an empty room (dogs only, if any), nothing to detect
