"""The one bridge to faster-coco-eval: COCO box matching and average precision, with one set of settings.

Training's validation metric (``val_map50`` and ``val_map``, which pick an adapter's best epoch) and
``cvcycle evaluate``/``cvcycle gate`` (``map50``, ``map`` and the counts at the operating threshold)
both run COCO through here, so the same boxes give the same figures in a run and in a report.
Matching and AP are faster-coco-eval's, never re-implemented; this module only builds COCO's inputs
in memory and reads its outputs.

The settings, chosen once:

- **IoU thresholds** for AP: COCO's ten, 0.50, 0.55 ... 0.95. ``map`` is the mean over all ten,
  ``map50`` the first. Counting hits at the operating threshold runs a second evaluation at the one
  threshold 0.5 (``HIT_IOU``; see ``cvcycle.evaluate.metrics`` for why a second run).
- **maxDets** ``[100]``: COCO's standard detection budget per image and class, the one its headline
  AP figures use. The smaller budgets (1, 10) feed only COCO's recall figures, which nobody reports.
- **One area range**, ``all`` (0 to 1e10 square pixels): surveillance frames are not split into
  small, medium and large objects, and COCO's headline AP uses ``all`` too. With one area range the
  per-image results sit at ``category * images + image``, which is what resampling relies on.
- **Per-image results kept** (``separate_eval``): a bootstrap resample of images re-runs only the
  accumulate step on the resampled per-image results (``CocoEvaluation.resampled_precision``): the
  AP a full re-evaluation of the resampled images gives, at a fraction of the cost.
- **Undefined is not zero**: a category with no ground truth has no AP and is left out of the mean,
  as COCO does; with no ground truth at all, ``average_precision`` gives None. Training, which needs a
  number to compare epochs, reads that as 0 (``coco_map``).

faster-coco-eval is imported on first use: loading a model to predict never needs it.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cvcycle.models.detections import Detections

if TYPE_CHECKING:
    from faster_coco_eval import COCOeval_faster  # type: ignore[import-untyped]

# The ten IoU thresholds of COCO's AP: 0.50, 0.55 ... 0.95, computed as COCO computes them.
AP_IOU_THRESHOLDS = tuple(np.linspace(0.5, 0.95, 10).tolist())
# A detection hits a box at the operating threshold when their IoU is at least this.
HIT_IOU = 0.5
MAX_DETECTIONS = 100
ALL_AREAS = (0.0, 1e10)


def truth_annotation(
    ann_id: int, image_id: int, category_id: int, x: float, y: float, w: float, h: float
) -> dict[str, Any]:
    """A ground-truth box as COCO holds it (``x, y`` the top-left corner, in pixels)."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, y, w, h],
        "area": w * h,
        "iscrowd": 0,
    }


def detection_annotation(
    ann_id: int, image_id: int, category_id: int, x: float, y: float, w: float, h: float, score: float
) -> dict[str, Any]:
    """A detection as COCO holds it: a box with a score."""
    return {**truth_annotation(ann_id, image_id, category_id, x, y, w, h), "score": score}


class CocoEvaluation:
    """One faster-coco-eval run over a set of images (ids 1..images), kept for reading and resampling."""

    def __init__(self, evaluation: COCOeval_faster, images: int) -> None:
        self._coco = evaluation
        self.images = images
        self._resample_params: Any = None

    @property
    def precision(self) -> np.ndarray:
        """COCO's precision array (T IoU thresholds, R recall points, K categories, 1 area, 1 maxDets)."""
        return np.asarray(self._coco.eval["precision"])

    def resampled_precision(self, image_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The precision array of a resample of the images (0-based indices, which may repeat)."""
        from faster_coco_eval import faster_eval_api_cpp as coco_cpp

        n, k = self.images, len(self._coco.params.catIds)
        # Per-image results are ordered [category][area range][image]; with one area range, image i
        # of category c sits at c * n + i.
        per_image = self._coco._evalImgs_cpp
        resampled = [per_image[c * n + int(i)] for c in range(k) for i in image_indices]
        if self._resample_params is None or len(self._resample_params.imgIds) != len(image_indices):
            self._resample_params = copy.deepcopy(self._coco._paramsEval)
            self._resample_params.imgIds = list(range(len(image_indices)))
        return np.asarray(coco_cpp.COCOevalAccumulate(self._resample_params, resampled)["precision"])

    def matches(self) -> Iterator[tuple[int, int]]:
        """(detection id, truth id) of every match; one pair per detection when run at one IoU."""
        for key in self._coco.eval["matched"]:
            dt_id, gt_id = key.split("_", 1)
            yield int(dt_id), int(gt_id)


def evaluate_coco(
    images: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    truth: list[dict[str, Any]],
    detections: list[dict[str, Any]],
    *,
    iou_thresholds: Sequence[float] = AP_IOU_THRESHOLDS,
) -> CocoEvaluation:
    """Match ``detections`` to ``truth`` and accumulate, with the settings of the module docstring.

    ``images`` must carry ids 1..len(images); annotations come from ``truth_annotation`` and
    ``detection_annotation``.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    # COCO objects are built from dicts in memory: no files, and empty detection lists are fine
    # (``loadRes`` refuses those).
    gt = COCO()
    gt.dataset = {"images": images, "categories": categories, "annotations": truth}
    dt = COCO()
    dt.dataset = {"images": images, "categories": categories, "annotations": detections}
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints
        gt.createIndex()
        dt.createIndex()
    coco = COCOeval_faster(gt, dt, "bbox", print_function=_quiet, separate_eval=True)
    coco.params.iouThrs = np.array(iou_thresholds)
    coco.params.maxDets = [MAX_DETECTIONS]
    coco.params.areaRng = [list(ALL_AREAS)]
    coco.params.areaRngLbl = ["all"]
    coco.evaluate()
    coco.accumulate()
    return CocoEvaluation(coco, len(images))


def average_precision(precision: np.ndarray) -> tuple[float | None, float | None]:
    """mAP@[.5:.95] and AP50 from a precision array, averaged over defined entries as COCO does."""
    every = precision[:, :, :, 0, -1]
    at_50 = precision[0, :, :, 0, -1]
    defined, defined_50 = every[every > -1], at_50[at_50 > -1]
    return (
        float(defined.mean()) if defined.size else None,
        float(defined_50.mean()) if defined_50.size else None,
    )


def _quiet(*_args: object, **_kwargs: object) -> None:
    """faster-coco-eval's print hook, silenced: the numbers are returned, not printed."""


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
    """``{"map50", "map"}`` of ``found`` against ``truth`` (one entry per image, same order).

    What adapters use to pick their best epoch; undefined (no ground truth) reads as 0.
    """
    if len(truth) != len(found):
        raise ValueError(f"{len(truth)} images of ground truth but {len(found)} of detections")
    images: list[dict[str, Any]] = []
    gt_anns: list[dict[str, Any]] = []
    dt_anns: list[dict[str, Any]] = []
    for image_id, (gt, dets) in enumerate(zip(truth, found, strict=True), start=1):
        images.append({"id": image_id, "width": gt.width, "height": gt.height})
        for (x0, y0, x1, y1), cls in zip(gt.boxes.tolist(), gt.class_ids.tolist(), strict=True):
            w, h = x1 - x0, y1 - y0
            gt_anns.append(truth_annotation(len(gt_anns) + 1, image_id, int(cls) + 1, x0, y0, w, h))
        for (x, y, w, h), score, cls in zip(
            dets.xywh.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), strict=True
        ):
            dt_anns.append(detection_annotation(len(dt_anns) + 1, image_id, int(cls) + 1, x, y, w, h, score))
    if not gt_anns:
        return {"map50": 0.0, "map": 0.0}
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    overall, at_50 = average_precision(evaluate_coco(images, categories, gt_anns, dt_anns).precision)
    return {"map50": at_50 or 0.0, "map": overall or 0.0}
