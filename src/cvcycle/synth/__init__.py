"""A seeded, deterministic synthetic home-camera world with exact ground truth.

Rooms with furniture seen by a static wall-mounted camera, 1-3 articulated people walking about
(some of them fall and stay down), optional dogs as hard negatives, and three lighting regimes
(day, dim, night/IR) that give a real domain shift. Used by the demo and the tests in place of real
footage: every clip is a pure function of its spec and renders to a real MP4.

    specs = generate_clips(4, "night", dogs=True, seed=1)
    write_clip(specs[0], Path("night-dogs-s1-c0.mp4"))
"""

from cvcycle.synth.clips import (
    MIN_BOX_PIXELS,
    generate_clips,
    render_frame,
    render_frames,
    render_label_frame,
    render_label_frames,
    write_clip,
)
from cvcycle.synth.model import ACTIONS, CLASSES, DOG_LABEL_BASE, LIGHTING, Box, ClipSpec, Segment
from cvcycle.synth.room import ROOMS

__all__ = [
    "ACTIONS",
    "CLASSES",
    "DOG_LABEL_BASE",
    "LIGHTING",
    "MIN_BOX_PIXELS",
    "ROOMS",
    "Box",
    "ClipSpec",
    "Segment",
    "generate_clips",
    "render_frame",
    "render_frames",
    "render_label_frame",
    "render_label_frames",
    "write_clip",
]
