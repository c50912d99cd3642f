"""Tracks: one object followed over a video by keyframes, with linear interpolation between them.

An annotator places a box on a few keyframes; every frame between two keyframes gets the box that
moves each edge linearly from one keyframe to the next. Before the first and after the last
keyframe the track has no box (the object is not there). The web UI does the same arithmetic in
``web/static/js/tracks.js`` to draw the track while scrubbing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from cvcycle.boxes import XYWH


@dataclass(frozen=True)
class Keyframe:
    frame: int
    box: XYWH


def _sorted(keyframes: Sequence[Keyframe]) -> list[Keyframe]:
    ordered = sorted(keyframes, key=lambda k: k.frame)
    for a, b in pairwise(ordered):
        if a.frame == b.frame:
            raise ValueError(f"two keyframes at frame {a.frame}")
    return ordered


def _lerp(a: XYWH, b: XYWH, t: float) -> XYWH:
    x, y, w, h = (p + (q - p) * t for p, q in zip(a, b, strict=True))
    return (x, y, w, h)


def interpolate(keyframes: Sequence[Keyframe], frame: int) -> XYWH | None:
    """The track's box at ``frame``: a keyframe's own box, linear between two, None outside."""
    ordered = _sorted(keyframes)
    if not ordered or frame < ordered[0].frame or frame > ordered[-1].frame:
        return None
    frames = [k.frame for k in ordered]
    i = bisect_left(frames, frame)
    if frames[i] == frame:
        return ordered[i].box
    before, after = ordered[i - 1], ordered[i]
    return _lerp(before.box, after.box, (frame - before.frame) / (after.frame - before.frame))


def track_boxes(keyframes: Sequence[Keyframe], frames: Iterable[int]) -> dict[int, XYWH]:
    """The track's boxes on those of ``frames`` inside its keyframe span."""
    ordered = _sorted(keyframes)
    if not ordered:
        return {}
    out: dict[int, XYWH] = {}
    key_frames = [k.frame for k in ordered]
    for frame in sorted(set(frames)):
        if frame < key_frames[0] or frame > key_frames[-1]:
            continue
        i = bisect_left(key_frames, frame)
        if key_frames[i] == frame:
            out[frame] = ordered[i].box
        else:
            a, b = ordered[i - 1], ordered[i]
            out[frame] = _lerp(a.box, b.box, (frame - a.frame) / (b.frame - a.frame))
    return out
