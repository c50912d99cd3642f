"""Evaluating a model on frames: loading a frame set of a dataset version, predicting, scoring.

``load_eval_set`` reads the frames of a selection (JPEG bytes, ground-truth boxes and ``fall``
segments); ``evaluate_frames`` runs any ``Predictor`` over a frame set in batches and computes every
metric of ``cvcycle.evaluate.metrics``; ``evaluate_predictor`` is the two together, and
``evaluate_model`` loads a registered model first: what ``cvcycle evaluate`` calls, with the dataset
and slice as the user wrote them. The gate calls ``evaluate_frames`` once per model and frame set
and reuses the matched predictions for its bootstrap.

An evaluation set reads its selection with the same frame and box queries a training manifest is
written from (``cvcycle.data.snapshot``), live rather than through a manifest: evaluation also reads
the working copy, which has no manifest, and a gate's diff set is a handful of chosen frames.

Pseudo-labels (boxes a model proposed and nobody reviewed) are not ground truth: grading a model
against another model's guesses would be circular, so they are left out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from cvcycle.boxes import Box
from cvcycle.data.ingest import ProgressFn
from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.data.slices import SPLITS
from cvcycle.data.snapshot import iter_boxes, segments_of, snapshot_frames
from cvcycle.db import Database
from cvcycle.db.models import Media
from cvcycle.errors import InvalidInput
from cvcycle.evaluate.metrics import (
    FALL_ACTION,
    DetectionMetrics,
    FallEvent,
    FrameTruth,
    MatchedDetections,
    match_detections,
)
from cvcycle.media import decode_jpeg
from cvcycle.models.detections import Detections
from cvcycle.models.predictor import Predictor
from cvcycle.refs import DatasetRef, format_ref, parse_dataset_ref
from cvcycle.store import BlobStore

DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 16
# Detections below this score carry no information for AP and only slow COCO down.
MIN_SCORE = 0.001
# A fall is found when the model reports a fallen person up to this long after the segment ends.
FALL_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class EvalFrame:
    """A frame to evaluate on: its JPEG bytes and what it really shows."""

    frame_id: int
    jpeg: bytes
    truth: FrameTruth


@dataclass(frozen=True)
class EvalSet:
    """A named set of frames with the falls that happen in them."""

    name: str
    description: str
    frames: tuple[EvalFrame, ...]
    falls: tuple[FallEvent, ...] = ()
    splits: dict[str, int] = field(default_factory=dict)  # frames per train/val/test split

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "frames": len(self.frames),
            "splits": dict(self.splits),
            "media": len({f.truth.media_id for f in self.frames}),
            "boxes": sum(len(f.truth.boxes) for f in self.frames),
            "falls": len(self.falls),
        }


@dataclass
class EvaluationResult:
    """One model on one frame set: the metrics, and the matched predictions for resampling."""

    model: str
    data: str
    threshold: float
    metrics: DetectionMetrics
    matched: MatchedDetections = field(repr=False, compare=False)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "threshold": self.threshold,
            "metrics": self.metrics.to_json(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def model_label(predictor: Predictor) -> str:
    """How reports name a model: its ``version`` (``detector@3``) when it has one, else its type."""
    version = getattr(predictor, "version", None)
    if isinstance(version, str) and version:
        return version
    name, number = getattr(version, "name", None), getattr(version, "version", None)
    if name is not None and number is not None:
        return format_ref(name, number)
    return type(predictor).__name__


def load_eval_set(
    db: Database,
    store: BlobStore,
    selection: Selection,
    *,
    name: str | None = None,
    frame_ids: Collection[int] | None = None,
    fall_tolerance_s: float = FALL_TOLERANCE_S,
    progress: ProgressFn | None = None,
) -> EvalSet:
    """The frames of ``selection`` (only ``frame_ids`` of them, when given), with truth.

    Each fall's tolerance is ``fall_tolerance_s`` seconds of frames at its medium's frame rate.
    """
    with db.read() as session:
        rows = snapshot_frames(session, selection)
        if frame_ids is not None:
            wanted = set(frame_ids)
            rows = [r for r in rows if r.frame_id in wanted]
        keep = {r.frame_id for r in rows}
        boxes: dict[int, list[Box]] = defaultdict(list)
        for box in iter_boxes(session, selection):
            if box.frame_id in keep and box.source != "pseudo":
                boxes[box.frame_id].append(Box(box.cls, box.x, box.y, box.w, box.h))
        media_ids = sorted({r.media_id for r in rows})
        fps: dict[int, float | None] = {
            media_id: rate
            for media_id, rate in session.execute(select(Media.id, Media.fps).where(Media.id.in_(media_ids)))
        }
        falls = tuple(
            FallEvent(
                media_id=s.media_id,
                start_frame=s.start_frame,
                end_frame=s.end_frame,
                tolerance_frames=round((fps.get(s.media_id) or 0.0) * fall_tolerance_s),
            )
            for s in segments_of(session, selection.ref, media_ids)
            if s.cls == FALL_ACTION
        )
    name = name or selection.slice.name
    frames = []
    for done, row in enumerate(rows, start=1):
        truth = FrameTruth(row.media_id, row.index, row.width, row.height, tuple(boxes.get(row.frame_id, ())))
        frames.append(EvalFrame(row.frame_id, store.get_bytes(row.blob_key, row.blob_size), truth))
        if progress is not None and (done % 64 == 0 or done == len(rows)):
            progress(f"reading {name}", done, len(rows))
    description = selection.label
    if frame_ids is not None:
        description += f", {len(frames)} chosen frames"
    splits = {split: sum(1 for r in rows if r.split == split) for split in SPLITS}
    return EvalSet(name, description, tuple(frames), falls, splits)


def predict_frames(
    predictor: Predictor,
    frames: Sequence[EvalFrame],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_score: float = MIN_SCORE,
    progress: ProgressFn | None = None,
    description: str = "predicting",
) -> tuple[list[Detections], dict[str, float]]:
    """Detections for every frame, decoded and predicted in batches; plus decode/predict seconds."""
    if batch_size < 1:
        raise InvalidInput(f"batch size must be at least 1, got {batch_size}")
    out: list[Detections] = []
    decode_s = predict_s = 0.0
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        t0 = time.perf_counter()
        images = [decode_jpeg(f.jpeg) for f in batch]
        t1 = time.perf_counter()
        detections = predictor.predict(images, threshold=min_score)
        predict_s += time.perf_counter() - t1
        decode_s += t1 - t0
        if len(detections) != len(images):
            raise InvalidInput(
                f"model {model_label(predictor)} returned {len(detections)} results for {len(images)} images",
                hint="a Predictor returns one Detections per image",
            )
        out.extend(detections)
        if progress is not None:
            progress(description, len(out), len(frames))
    return out, {"decode": decode_s, "predict": predict_s}


def evaluate_frames(
    predictor: Predictor,
    frames: Sequence[EvalFrame],
    falls: Sequence[FallEvent] = (),
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    data: str = "frames",
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Run ``predictor`` over ``frames`` and compute every metric at the operating ``threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput(f"threshold must be in [0, 1], got {threshold}")
    label = model_label(predictor)
    predictions, seconds = predict_frames(
        predictor, frames, batch_size=batch_size, progress=progress, description=f"{label} on {data}"
    )
    t0 = time.perf_counter()
    matched = match_detections([f.truth for f in frames], predictions, falls, threshold=threshold)
    metrics = matched.summary()
    seconds["metrics"] = time.perf_counter() - t0
    return EvaluationResult(label, data, threshold, metrics, matched, seconds)


def evaluate_model(
    db: Database,
    store: BlobStore,
    model_ref: str,
    dataset: str,
    slice_text: str | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Evaluate the registered model ``model_ref`` (``detector@3``, ``detector:production``) on the
    frames of ``dataset`` (``home@3``) in ``slice_text``.

    The dataset reference is parsed before the model is loaded: a typo costs no model loading.
    """
    ref = parse_dataset_ref(dataset)
    # Deferred: loading a model imports torch.
    from cvcycle.registry.loading import load_model

    model = load_model(db, store, model_ref)
    return evaluate_predictor(
        db, store, model, ref, slice_text, threshold=threshold, batch_size=batch_size, progress=progress
    )


def evaluate_predictor(
    db: Database,
    store: BlobStore,
    predictor: Predictor,
    dataset: str | DatasetRef,
    slice_text: str | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Evaluate ``predictor`` on the frames of ``dataset`` (``home@3``) in ``slice_text``."""
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput(f"threshold must be in [0, 1], got {threshold}")
    with db.read() as session:
        selection = resolve_selection(session, dataset, slice_text)
    eval_set = load_eval_set(db, store, selection, progress=progress)
    return evaluate_frames(
        predictor,
        eval_set.frames,
        eval_set.falls,
        threshold=threshold,
        batch_size=batch_size,
        data=eval_set.description,
        progress=progress,
    )
