"""Simulated operators: they judge a model's detections against the synthetic ground truth.

An operator looking at an event sees the whole frame. Each detection that matches an object of
its class (IoU >= 0.5, best score first, one to one) is confirmed; one that lands on an object of
another class or too loosely (IoU >= 0.3 with an unmatched object) is an inaccurate detection,
corrected to that object's box; any other is a false detection; each object left unmatched is a
missed detection. This is what a careful human would report, which makes the before/after
statistics of the demo a measurement rather than a script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cvcycle.boxes import Box, iou

MATCH_IOU = 0.5
LOOSE_IOU = 0.3


@dataclass
class Judgement:
    confirmed: list[int] = field(default_factory=list)
    false: list[int] = field(default_factory=list)
    inaccurate: list[tuple[int, Box]] = field(default_factory=list)
    missed: list[Box] = field(default_factory=list)


def judge(detections: Sequence[dict[str, object]], truth: Sequence[Box]) -> Judgement:
    """Judge ``detections`` (``Detections.to_json()`` items) against the objects in the frame."""
    order = sorted(range(len(detections)), key=lambda i: -float(detections[i]["score"]))  # type: ignore[arg-type]
    free = set(range(len(truth)))
    out = Judgement()
    unmatched: list[int] = []
    for i in order:
        det = detections[i]
        box = [float(v) for v in det["box"]]  # type: ignore[attr-defined]
        best, best_iou = None, MATCH_IOU
        for j in free:
            t = truth[j]
            if t.cls == det["cls"]:
                overlap = iou(box, t.xywh())
                if overlap >= best_iou:
                    best, best_iou = j, overlap
        if best is None:
            unmatched.append(i)
        else:
            free.discard(best)
            out.confirmed.append(i)
    for i in unmatched:
        box = [float(v) for v in detections[i]["box"]]  # type: ignore[attr-defined]
        best, best_iou = None, LOOSE_IOU
        for j in free:
            t = truth[j]
            overlap = iou(box, t.xywh())
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is None:
            out.false.append(i)
        else:
            free.discard(best)
            out.inaccurate.append((i, truth[best]))
    out.missed = [truth[j] for j in sorted(free)]
    return out
