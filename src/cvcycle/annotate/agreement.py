"""Agreement between annotators of the same item: IoU-matched F1 for boxes, temporal IoU for segments.

Both scores are 1.0 for identical work and for two annotators who agree that there is nothing, and
0.0 when nothing matches. With k annotators a task's score is the mean over all pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Annotated

from pydantic import PlainSerializer
from pydantic.dataclasses import dataclass as pydantic_dataclass

from cvcycle.boxes import Box, iou

# A pair of boxes of one class counts as the same object from this IoU on (the COCO/VOC convention).
MATCH_IOU = 0.5


@dataclass(frozen=True)
class ClassRange:
    """An action of ``cls`` over the inclusive frame range ``start .. end``."""

    cls: str
    start: int
    end: int


def match_boxes(
    a: Sequence[Box], b: Sequence[Box], min_iou: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i, j, iou)`` of same-class boxes, greedily by descending IoU.

    Greedy matching is what COCO evaluation does; ties break by index, so the result is stable.
    """
    pairs = [
        (iou(x.xywh(), y.xywh()), i, j) for i, x in enumerate(a) for j, y in enumerate(b) if x.cls == y.cls
    ]
    pairs = sorted((p for p in pairs if p[0] >= min_iou), key=lambda p: (-p[0], p[1], p[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    matches = []
    for overlap, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        matches.append((i, j, overlap))
    return sorted(matches)


def boxes_f1(a: Sequence[Box], b: Sequence[Box], min_iou: float = MATCH_IOU) -> float:
    """F1 of one annotator's boxes against the other's: ``2·matched / (|a| + |b|)`` (symmetric)."""
    if not a and not b:
        return 1.0
    return 2 * len(match_boxes(a, b, min_iou)) / (len(a) + len(b))


def _covered(ranges: Sequence[ClassRange], cls: str) -> list[tuple[int, int]]:
    """The merged inclusive frame intervals that ranges of ``cls`` cover."""
    spans = sorted((r.start, r.end) for r in ranges if r.cls == cls)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(spans: Sequence[tuple[int, int]]) -> int:
    return sum(end - start + 1 for start, end in spans)


def _overlap(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            total += hi - lo + 1
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def temporal_iou(a: ClassRange, b: ClassRange) -> float:
    """Frames both ranges cover over frames either covers (0 for different classes)."""
    if a.cls != b.cls:
        return 0.0
    inter = max(0, min(a.end, b.end) - max(a.start, b.start) + 1)
    union = (a.end - a.start + 1) + (b.end - b.start + 1) - inter
    return inter / union if union > 0 else 0.0


def segments_tiou(a: Sequence[ClassRange], b: Sequence[ClassRange]) -> float:
    """Temporal IoU of two annotators' segments: per class, frames both marked over frames either
    marked, averaged over the classes either used. Splitting one action in two pieces costs nothing;
    missing frames at the ends costs in proportion."""
    classes = sorted({r.cls for r in a} | {r.cls for r in b})
    if not classes:
        return 1.0
    scores = []
    for cls in classes:
        ca, cb = _covered(a, cls), _covered(b, cls)
        inter = _overlap(ca, cb)
        union = _length(ca) + _length(cb) - inter
        scores.append(inter / union if union else 1.0)
    return sum(scores) / len(scores)


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


# A score, shown to 4 decimals in JSON.
Score = Annotated[float | None, PlainSerializer(_rounded)]


@pydantic_dataclass(frozen=True)
class Agreement:
    """Mean pairwise agreement of a task's annotators (None scores below two annotators).

    A pydantic dataclass, so that every serialisation (``records.to_jsonable`` too) rounds the scores.
    """

    annotators: list[str]
    pairs: int
    boxes_f1: Score
    segments_tiou: Score


def agreement(
    work: Sequence[tuple[str, Sequence[Box], Sequence[ClassRange]]], min_iou: float = MATCH_IOU
) -> Agreement:
    """Mean pairwise agreement of k annotators' ``(name, boxes, segments)``; None below two."""
    names = [name for name, _, _ in work]
    pairs = list(combinations(work, 2))
    if not pairs:
        return Agreement(names, 0, None, None)
    f1 = [boxes_f1(x[1], y[1], min_iou) for x, y in pairs]
    tiou = [segments_tiou(x[2], y[2]) for x, y in pairs]
    return Agreement(names, len(pairs), sum(f1) / len(f1), sum(tiou) / len(tiou))
