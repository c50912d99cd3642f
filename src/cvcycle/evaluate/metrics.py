"""Detection metrics of one model on one set of frames.

What it owns: COCO mAP@[.5:.95] and AP50 (overall and per class), precision and recall at the
operating threshold (overall and per class), false positives per 1,000 frames, and recall of
``fall`` events. Every figure is a plain dataclass with ``to_json()``.

COCO matching and AP come from faster-coco-eval and are never re-implemented here. The evaluation
runs once per (model, frame set) with per-image results kept (``separate_eval``), so a bootstrap
resample of frames re-runs only faster-coco-eval's accumulate step on the resampled per-image
results: the same AP a full re-evaluation of the resampled frames gives, at a fraction of the cost.

Counting at the operating threshold uses faster-coco-eval's own matches (greedy one-to-one in
score order, COCO's rule) from a second evaluation of the detections scoring at least the threshold
at the single IoU threshold 0.5. A second run, because the ``matched`` table of a run over
IoU 0.5:0.95 is the union over all ten thresholds: a detection matched to a box only at IoU 0.75
would show up beside the one that took that box at 0.5, and one box would count twice.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster  # type: ignore[import-untyped]
from faster_coco_eval import faster_eval_api_cpp as coco_cpp

from cvcycle.boxes import Box
from cvcycle.models.detections import Detections

FALL_ACTION = "fall"
FALLEN_CLASS = "fallen_person"
# Metrics a gate criterion may name; ``recall_<class>`` and ``precision_<class>`` come on top.
METRICS = ("map", "map50", "precision", "recall", "fp_per_1k_frames", "fp_per_1k_all_frames", "recall_fall")
CLASS_METRIC_PREFIXES = ("recall_", "precision_")
AP_METRICS = ("map", "map50")
# COCO's standard detection budget per image and class; one area range: surveillance frames are not
# split into small/medium/large objects here.
MAX_DETECTIONS = 100
# A detection hits a box at the operating threshold when their IoU is at least this.
HIT_IOU = 0.5
_ALL_AREAS = [[0.0, 1e10]]


@dataclass(frozen=True)
class FrameTruth:
    """What a frame really shows. A frame with no boxes counts: detections on it are false positives."""

    media_id: int
    index: int
    width: int
    height: int
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class FallEvent:
    """A ``fall`` segment of one medium; found when the model sees a fallen person within the window."""

    media_id: int
    start_frame: int
    end_frame: int
    tolerance_frames: int = 0

    @property
    def window(self) -> tuple[int, int]:
        """Frame indices (inclusive) in which a ``fallen_person`` detection finds this fall."""
        return self.start_frame, self.end_frame + self.tolerance_frames

    def to_json(self) -> dict[str, int]:
        return {
            "media_id": self.media_id,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "tolerance_frames": self.tolerance_frames,
        }


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return None if den == 0 else scale * float(num) / float(den)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


@dataclass(frozen=True)
class ClassMetrics:
    """One class: COCO AP, and counts, precision and recall at the operating threshold (IoU >= 0.5)."""

    cls: str
    ground_truth: int
    detections: int
    true_positives: int
    ap: float | None
    ap50: float | None

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.detections)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_positives, self.ground_truth)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.cls,
            "ground_truth": self.ground_truth,
            "detections": self.detections,
            "true_positives": self.true_positives,
            "false_positives": self.detections - self.true_positives,
            "ap": _rounded(self.ap),
            "ap50": _rounded(self.ap50),
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
        }


@dataclass(frozen=True)
class DetectionMetrics:
    """Every figure of one model on one set of frames. ``None`` means undefined (nothing to divide by)."""

    threshold: float
    frames: int
    frames_without_truth: int
    ground_truth: int
    detections: int
    true_positives: int
    fp_on_empty_frames: int
    falls: int
    falls_found: int
    map: float | None
    map50: float | None
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.detections)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_positives, self.ground_truth)

    @property
    def false_positives(self) -> int:
        return self.detections - self.true_positives

    @property
    def fp_per_1k_frames(self) -> float | None:
        """Detections above threshold per 1,000 frames that show nothing (the hard-negative figure)."""
        return _ratio(self.fp_on_empty_frames, self.frames_without_truth, 1000.0)

    @property
    def fp_per_1k_all_frames(self) -> float | None:
        """Unmatched detections above threshold per 1,000 frames of any kind."""
        return _ratio(self.false_positives, self.frames, 1000.0)

    @property
    def recall_fall(self) -> float | None:
        return _ratio(self.falls_found, self.falls)

    def value(self, metric: str) -> float | None:
        """The figure a gate criterion names: one of METRICS, ``recall_<class>`` or ``precision_<class>``."""
        if metric in METRICS:
            value: float | None = getattr(self, metric)
            return value
        for prefix in CLASS_METRIC_PREFIXES:
            if metric.startswith(prefix):
                per_class = self.per_class.get(metric[len(prefix) :])
                return None if per_class is None else getattr(per_class, prefix[:-1])
        raise KeyError(metric)

    def undefined_reason(self, metric: str) -> str:
        """Why ``value(metric)`` is None: what there was nothing of."""
        fixed = {
            "map": "no ground-truth boxes",
            "map50": "no ground-truth boxes",
            "precision": "no detections above the threshold",
            "recall": "no ground-truth boxes",
            "fp_per_1k_frames": "no frames without ground truth",
            "fp_per_1k_all_frames": "no frames",
            "recall_fall": "no fall in these frames",
        }
        if not self.frames:
            return "no frames"
        if metric in fixed:
            return fixed[metric]
        for prefix, what in (
            ("recall_", "ground-truth boxes"),
            ("precision_", "detections above the threshold"),
        ):
            if metric.startswith(prefix):
                return f"no {metric[len(prefix) :]} {what}"
        return "undefined"

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "frames": self.frames,
            "frames_without_truth": self.frames_without_truth,
            "ground_truth": self.ground_truth,
            "detections": self.detections,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "map": _rounded(self.map),
            "map50": _rounded(self.map50),
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
            "fp_on_empty_frames": self.fp_on_empty_frames,
            "fp_per_1k_frames": _rounded(self.fp_per_1k_frames),
            "fp_per_1k_all_frames": _rounded(self.fp_per_1k_all_frames),
            "falls": self.falls,
            "falls_found": self.falls_found,
            "recall_fall": _rounded(self.recall_fall),
            "per_class": {name: m.to_json() for name, m in self.per_class.items()},
        }


def is_metric_name(metric: str) -> bool:
    """Whether ``metric`` names a figure (class metrics are checked against real classes later)."""
    if metric in METRICS:
        return True
    return any(metric.startswith(p) and len(metric) > len(p) for p in CLASS_METRIC_PREFIXES)


class MatchedDetections:
    """One model's detections on one frame set, matched to the truth once by faster-coco-eval.

    ``summary()`` gives the metrics of the whole set; ``summary(frame_indices, fall_indices)`` those
    of a resample (indices may repeat), which is what the gate's bootstrap needs.
    """

    def __init__(
        self,
        classes: tuple[str, ...],
        threshold: float,
        truth_counts: np.ndarray,
        detection_counts: np.ndarray,
        hit_counts: np.ndarray,
        fall_found: np.ndarray,
        coco: COCOeval_faster | None,
    ) -> None:
        self.classes = classes
        self.threshold = threshold
        self._truth = truth_counts  # (frames, classes): ground-truth boxes
        self._detections = detection_counts  # (frames, classes): detections scoring >= threshold
        self._hits = hit_counts  # (frames, classes): of those, matched to a truth box at IoU >= 0.5
        self._fall_found = fall_found  # (falls,) bool
        self._coco = coco
        self._resample_params: Any = None

    @property
    def frames(self) -> int:
        return len(self._truth)

    @property
    def falls(self) -> int:
        return len(self._fall_found)

    def summary(
        self,
        frame_indices: np.ndarray | None = None,
        fall_indices: np.ndarray | None = None,
        *,
        with_ap: bool = True,
    ) -> DetectionMetrics:
        """The metrics of the set, or of a resample of its frames and falls. ``with_ap=False`` skips COCO."""
        truth, dets, hits = self._truth, self._detections, self._hits
        fall_found = self._fall_found
        if frame_indices is not None:
            truth, dets, hits = truth[frame_indices], dets[frame_indices], hits[frame_indices]
        if fall_indices is not None:
            fall_found = fall_found[fall_indices]
        per_image_truth = truth.sum(axis=1)
        empty = per_image_truth == 0
        class_ap: list[tuple[float | None, float | None]] = [(None, None)] * len(self.classes)
        overall: tuple[float | None, float | None] = (None, None)
        if with_ap and self._coco is not None and len(truth):
            precision = self._precision_array(frame_indices)
            overall = _average_precision(precision)
            class_ap = [_average_precision(precision[:, :, k : k + 1]) for k in range(len(self.classes))]
        truth_per_class, dets_per_class, hits_per_class = truth.sum(0), dets.sum(0), hits.sum(0)
        per_class = {
            name: ClassMetrics(
                cls=name,
                ground_truth=int(truth_per_class[k]),
                detections=int(dets_per_class[k]),
                true_positives=int(hits_per_class[k]),
                ap=class_ap[k][0],
                ap50=class_ap[k][1],
            )
            for k, name in enumerate(self.classes)
        }
        return DetectionMetrics(
            threshold=self.threshold,
            frames=len(truth),
            frames_without_truth=int(empty.sum()),
            ground_truth=int(truth_per_class.sum()),
            detections=int(dets_per_class.sum()),
            true_positives=int(hits_per_class.sum()),
            fp_on_empty_frames=int(dets[empty].sum()),
            falls=len(fall_found),
            falls_found=int(fall_found.sum()),
            map=overall[0],
            map50=overall[1],
            per_class=per_class,
        )

    def _precision_array(self, frame_indices: np.ndarray | None) -> np.ndarray:
        """COCO's precision array (T, R, K, A, M), of all frames or accumulated over a resample."""
        coco = self._coco
        assert coco is not None
        if frame_indices is None:
            return np.asarray(coco.eval["precision"])
        n, k = self.frames, len(coco.params.catIds)
        # faster-coco-eval keeps per-image results ordered [category][area range][image]; there is
        # one area range, so image i of category c sits at c * n + i.
        per_image = coco._evalImgs_cpp
        resampled = [per_image[c * n + int(i)] for c in range(k) for i in frame_indices]
        if self._resample_params is None or len(self._resample_params.imgIds) != len(frame_indices):
            self._resample_params = copy.deepcopy(coco._paramsEval)
            self._resample_params.imgIds = list(range(len(frame_indices)))
        return np.asarray(coco_cpp.COCOevalAccumulate(self._resample_params, resampled)["precision"])


def _average_precision(precision: np.ndarray) -> tuple[float | None, float | None]:
    """mAP@[.5:.95] and AP50 from COCO's precision array, averaged over defined entries as COCO does."""
    every = precision[:, :, :, 0, -1]
    at_50 = precision[0, :, :, 0, -1]
    defined, defined_50 = every[every > -1], at_50[at_50 > -1]
    return (
        float(defined.mean()) if defined.size else None,
        float(defined_50.mean()) if defined_50.size else None,
    )


def _class_list(truth: Sequence[FrameTruth], predictions: Sequence[Detections]) -> tuple[str, ...]:
    names: set[str] = {box.cls for frame in truth for box in frame.boxes}
    for det in predictions:
        names.update(det.class_names)
        names.update(det.class_name(i) for i in range(len(det)))
    return tuple(sorted(names))


def match_detections(
    truth: Sequence[FrameTruth],
    predictions: Sequence[Detections],
    falls: Sequence[FallEvent] = (),
    *,
    threshold: float = 0.5,
) -> MatchedDetections:
    """Match ``predictions[i]`` to ``truth[i]`` for every frame, once, with faster-coco-eval.

    A fall counts only when some frame of the set lies inside its segment; it is found when a
    ``fallen_person`` detection scoring at least ``threshold`` lies on a set frame of its window.
    """
    if len(truth) != len(predictions):
        raise ValueError(f"{len(truth)} frames of truth but {len(predictions)} predictions")
    classes = _class_list(truth, predictions)
    class_index = {name: k for k, name in enumerate(classes)}
    n, c = len(truth), len(classes)
    truth_counts = np.zeros((n, c), np.int64)
    detection_counts = np.zeros((n, c), np.int64)
    hit_counts = np.zeros((n, c), np.int64)

    images: list[dict[str, Any]] = []
    gt_anns: list[dict[str, Any]] = []
    dt_anns: list[dict[str, Any]] = []
    # Per detection id: its frame and class, to count matches at the threshold.
    dt_frame: list[int] = []
    dt_class: list[int] = []
    for i, (frame, det) in enumerate(zip(truth, predictions, strict=True)):
        images.append({"id": i + 1, "width": frame.width, "height": frame.height})
        for box in frame.boxes:
            k = class_index[box.cls]
            truth_counts[i, k] += 1
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": k + 1,
                    "bbox": [box.x, box.y, box.w, box.h],
                    "area": box.w * box.h,
                    "iscrowd": 0,
                }
            )
        xywh = det.xywh
        for j in range(len(det)):
            k = class_index[det.class_name(j)]
            score = float(det.scores[j])
            if score >= threshold:
                detection_counts[i, k] += 1
            x, y, w, h = (float(v) for v in xywh[j])
            dt_anns.append(
                {
                    "id": len(dt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": k + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "score": score,
                    "iscrowd": 0,
                }
            )
            dt_frame.append(i)
            dt_class.append(k)

    coco = None
    if n and c:
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
        coco = _run_coco(images, categories, gt_anns, dt_anns)
        above = [a for a in dt_anns if a["score"] >= threshold]
        at_threshold = _run_coco(images, categories, gt_anns, above, iou_thresholds=[HIT_IOU])
        # Keys are "<detection id>_<truth id>"; with one IoU threshold each side appears at most once.
        for key in at_threshold.eval["matched"]:
            dt_id = int(key.split("_", 1)[0])
            hit_counts[dt_frame[dt_id - 1], dt_class[dt_id - 1]] += 1

    fall_found = _falls_found(truth, predictions, falls, threshold)
    return MatchedDetections(classes, threshold, truth_counts, detection_counts, hit_counts, fall_found, coco)


def _run_coco(
    images: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    gt_anns: list[dict[str, Any]],
    dt_anns: list[dict[str, Any]],
    iou_thresholds: list[float] | None = None,
) -> COCOeval_faster:
    # COCO objects are built from dicts in memory: no files, and empty detection lists are fine
    # (``loadRes`` refuses those).
    gt = COCO()
    gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
    gt.createIndex()
    dt = COCO()
    dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
    dt.createIndex()
    coco = COCOeval_faster(gt, dt, "bbox", print_function=_quiet, separate_eval=True)
    coco.params.maxDets = [MAX_DETECTIONS]
    coco.params.areaRng = _ALL_AREAS
    coco.params.areaRngLbl = ["all"]
    if iou_thresholds is not None:
        coco.params.iouThrs = np.array(iou_thresholds)
    coco.evaluate()
    coco.accumulate()
    return coco


def _quiet(*_args: object) -> None:
    """faster-coco-eval prints progress through this; evaluation reports its own."""


def _falls_found(
    truth: Sequence[FrameTruth],
    predictions: Sequence[Detections],
    falls: Sequence[FallEvent],
    threshold: float,
) -> np.ndarray:
    frames_by_media: dict[int, list[tuple[int, bool]]] = {}
    for frame, det in zip(truth, predictions, strict=True):
        fallen = any(
            det.class_name(j) == FALLEN_CLASS and det.scores[j] >= threshold for j in range(len(det))
        )
        frames_by_media.setdefault(frame.media_id, []).append((frame.index, fallen))
    found = []
    for fall in falls:
        frames = frames_by_media.get(fall.media_id, [])
        if not any(fall.start_frame <= index <= fall.end_frame for index, _ in frames):
            continue  # the set holds none of this fall's frames: it is not part of this evaluation
        low, high = fall.window
        found.append(any(fallen for index, fallen in frames if low <= index <= high))
    return np.array(found, dtype=bool)


def compute_metrics(
    truth: Sequence[FrameTruth],
    predictions: Sequence[Detections],
    falls: Sequence[FallEvent] = (),
    *,
    threshold: float = 0.5,
) -> DetectionMetrics:
    """All metrics of ``predictions`` against ``truth`` (one entry per frame, same order)."""
    return match_detections(truth, predictions, falls, threshold=threshold).summary()
