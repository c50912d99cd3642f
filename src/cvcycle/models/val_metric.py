"""A quick validation metric for training: COCO mAP@0.5 and mAP@[.5:.95] by faster-coco-eval.

Adapters use it to pick their best epoch and runs report it; the full evaluation (per-class
precision and recall, false positives per 1,000 frames, action recall) is ``cvcycle.evaluate``'s.
Matching is faster-coco-eval's, never our own.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvcycle.models.detections import Detections


@dataclass(frozen=True)
class GroundTruth:
    """The true boxes of one image: xyxy pixels and class indices."""

    width: int
    height: int
    boxes: np.ndarray
    class_ids: np.ndarray


def coco_map(
    truth: Sequence[GroundTruth], found: Sequence[Detections], classes: Sequence[str]
) -> dict[str, float]:
    """``{"map50", "map"}`` of ``found`` against ``truth`` (one entry per image, same order)."""
    # Deferred: only training and evaluation need it.
    from faster_coco_eval import COCO, COCOeval_faster  # type: ignore[import-untyped]

    if len(truth) != len(found):
        raise ValueError(f"{len(truth)} images of ground truth but {len(found)} of detections")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, (gt, dets) in enumerate(zip(truth, found, strict=True), start=1):
        images.append({"id": image_id, "width": gt.width, "height": gt.height})
        for box, cls in zip(gt.boxes.tolist(), gt.class_ids.tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, score, cls in zip(
            dets.xywh.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), strict=True
        ):
            results.append({"image_id": image_id, "category_id": int(cls) + 1, "bbox": box, "score": score})
    if not annotations:
        return {"map50": 0.0, "map": 0.0}
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    gt_coco = COCO()
    gt_coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        if not results:
            return {"map50": 0.0, "map": 0.0}
        evaluation = COCOeval_faster(gt_coco, gt_coco.loadRes(results), iouType="bbox", print_function=_quiet)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    # COCO reports -1 for "no ground truth in this category/area"; that is no score, not a negative one.
    return {"map50": max(float(stats[1]), 0.0), "map": max(float(stats[0]), 0.0)}


def _quiet(*_args: object, **_kwargs: object) -> None:
    """faster-coco-eval's print hook, silenced: the numbers are returned, not printed."""
