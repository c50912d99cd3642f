"""A small home filled in seconds from the services: for browser tests, the UI bench and a quick look.

``cvcycle demo`` runs the whole loop and takes minutes; this fills the same kinds of records
without training anything: a short synthetic clip in dataset ``home`` with its exact boxes and
action segments, committed as ``home@1``; model versions ``detector@1`` (``production``) and
``detector@2`` (``candidate``, with a passing gate report), each with the run record that
``cvcycle train`` would have left; and production events with
synthetic night snapshots, some with the model's boxes (taken from the ground truth, one of them
shifted to be inaccurate and one invented to be false) and some where the model saw nothing, for
the missed-detection review.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cvcycle.data.datasets import get_dataset
from cvcycle.data.ingest import ingest_file
from cvcycle.data.labels import BoxInput, SegmentInput, add_boxes, add_segments
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import Dataset, Run
from cvcycle.feedback.events import push_events
from cvcycle.media import encode_jpeg
from cvcycle.registry.versions import CANDIDATE, PRODUCTION, create_model_version, set_alias
from cvcycle.store import BlobStore
from cvcycle.synth import CLASSES, ClipSpec, generate_clips, render_frame, write_clip

SAMPLE_DATASET = "home"
SAMPLE_MODEL = "detector"
SAMPLE_START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass
class SampleHome:
    """What was filled in, by id, so tests can find their way without searching."""

    dataset: str
    media_id: int
    frame_ids: list[int]
    model: str
    event_ids_with_boxes: list[int] = field(default_factory=list)
    empty_event_ids: list[int] = field(default_factory=list)


def _clip(db: Database, store: BlobStore, spec: ClipSpec) -> tuple[int, list[int]]:
    with tempfile.TemporaryDirectory(prefix="cvcycle-sample-") as tmp:
        path = write_clip(spec, Path(tmp) / f"{spec.name}.mp4")
        result = ingest_file(db, store, SAMPLE_DATASET, path, source="cam-1", attributes=spec.attributes)
    frame_of = dict(enumerate(result.frame_ids))
    boxes = [
        BoxInput(frame_of[b.frame_index], b.cls, b.x, b.y, b.w, b.h, track_id=b.track_id, source="import")
        for b in spec.boxes
    ]
    segments = [
        SegmentInput(result.media_id or 0, s.cls, s.start_frame, s.end_frame, s.track_id, source="import")
        for s in spec.segments
    ]
    with db.write() as session:
        add_boxes(session, SAMPLE_DATASET, boxes, author="synth")
        add_segments(session, SAMPLE_DATASET, segments, author="synth")
    return int(result.media_id or 0), list(result.frame_ids)


def _metrics(map50: float, recall: float, fp_per_1k: float) -> dict[str, Any]:
    """The headline figures of an evaluation, in the shape ``DetectionMetrics.to_json`` gives."""
    return {"map50": map50, "recall": recall, "precision": 0.8, "fp_per_1k_all_frames": fp_per_1k}


def _gate_report() -> dict[str, Any]:
    """A passing gate of detector@2 against detector@1, shaped as ``GateReport.to_json`` records it."""
    criterion = {"bound": None, "passed": True, "skipped": False}
    return {
        "verdict": "PASS",
        "passed": True,
        "reasons": [],
        "models": {"old": f"{SAMPLE_MODEL}@1", "new": f"{SAMPLE_MODEL}@2"},
        "criteria_file": {"threshold": 0.3, "bootstrap": 200},
        "sets": {
            "old": {"name": "old", "description": "test split of home@1", "frames": 20, "boxes": 40},
            "diff": {"name": "diff", "description": "frames added after home@1", "frames": 20, "boxes": 30},
        },
        "table": {
            "old": {"old": _metrics(0.61, 0.7, 50.0), "new": _metrics(0.63, 0.72, 40.0)},
            "diff": {"old": _metrics(0.30, 0.4, 300.0), "new": _metrics(0.52, 0.6, 120.0)},
        },
        "criteria": [
            {**criterion, "metric": "map50", "slice": "old", "rule": "new >= old - 0.05", "old": 0.61,
             "new": 0.63, "difference": 0.02, "ci95": {"low": -0.01, "high": 0.05, "resamples": 200},
             "reason": "0.630 >= 0.560"},
            {**criterion, "metric": "map50", "slice": "diff", "rule": "new >= old + 0.05", "old": 0.30,
             "new": 0.52, "difference": 0.22, "ci95": {"low": 0.15, "high": 0.29, "resamples": 200},
             "reason": "0.520 >= 0.350"},
        ],
        "seconds": {"total": 1.0},
    }  # fmt: skip


def _model_version(
    session: Session, dataset: Dataset, metrics: dict[str, float], gate_report: dict[str, Any] | None
) -> int:
    """A finished run record (as ``cvcycle train`` leaves one, minus the training) and its model version."""
    final_loss, final_map = metrics["train_loss"], metrics["val_map50"]
    run = Run(
        adapter="detector",
        model_name=SAMPLE_MODEL,
        status="finished",
        config={"epochs": 3, "note": "sample home: no training happened"},
        dataset_id=dataset.id,
        dataset_version=dataset.head,
        train_slice="train",
        val_slice="val",
        seed=0,
        metrics=metrics,
        history=[
            {"epoch": epoch, "train_loss": final_loss * (4 - epoch) / 1.5, "val_map50": final_map * epoch / 3}
            for epoch in (1, 2, 3)
        ],
        finished_at=datetime.now(UTC),
    )
    session.add(run)
    session.flush()
    version = create_model_version(
        session,
        name=SAMPLE_MODEL,
        adapter="detector",
        classes=list(CLASSES),
        config={"score_threshold": 0.3},
        artifacts={},
        run_id=run.id,
    )
    if gate_report is not None:
        version.gate_report = gate_report
    return version.version


def _models(db: Database) -> None:
    """detector@1 in production; detector@2, which passed the gate against it, as the candidate."""
    with db.write() as session:
        dataset = get_dataset(session, SAMPLE_DATASET)
        first = _model_version(session, dataset, {"val_map50": 0.5, "train_loss": 1.0}, None)
        set_alias(session, SAMPLE_MODEL, PRODUCTION, first, reason="sample home")
        second = _model_version(session, dataset, {"val_map50": 0.6, "train_loss": 0.8}, _gate_report())
        set_alias(session, SAMPLE_MODEL, CANDIDATE, second, reason="passed the gate")


def sample_event_lines(
    count: int,
    *,
    seed: int = 7,
    source_prefix: str = "cam-",
    start: datetime = SAMPLE_START,
    id_prefix: str = "sample",
) -> Iterator[str]:
    """``count`` JSON Lines events with synthetic night snapshots (320x240) of ``detector@1``.

    Every third event is empty (the model saw nothing); the others carry the ground-truth boxes
    of their frame, the first of them shifted (an inaccurate box) and, on every fourth event, an
    extra box where nothing is (a false detection). Events spread over three sources and two days.
    """
    spec = generate_clips(1, "night", dogs=True, seed=seed, seconds=max(1.0, min(count, 40) / 10))[0]
    boxes_of: dict[int, list[Any]] = {}
    for box in spec.boxes:
        boxes_of.setdefault(box.frame_index, []).append(box)
    snapshots: dict[int, str] = {}
    for i in range(count):
        index = i % spec.num_frames
        if index not in snapshots:
            snapshots[index] = base64.b64encode(encode_jpeg(render_frame(spec, index), 80)).decode()
        detections: list[dict[str, Any]] = []
        if i % 3 != 2:
            for j, box in enumerate(boxes_of.get(index, [])):
                x = box.x + (12 if j == 0 else 0)
                detections.append({"cls": box.cls, "score": 0.9 - 0.1 * j, "box": [x, box.y, box.w, box.h]})
            if i % 4 == 0:
                detections.append({"cls": "person", "score": 0.41, "box": [10.0, 150.0, 30.0, 60.0]})
        time = start + timedelta(hours=30 * (i % 2), minutes=i)
        yield json.dumps(
            {
                "id": f"{id_prefix}-{seed}-{i}",
                "source": f"{source_prefix}{i % 3 + 1}",
                "time": time.isoformat(),
                "model": f"{SAMPLE_MODEL}@1",
                "detections": detections,
                "snapshot": snapshots[index],
            }
        )


def fill_sample_home(db: Database, store: BlobStore, *, events: int = 12, seed: int = 7) -> SampleHome:
    """Fill an initialised, empty home (see the module docstring); takes a second or two."""
    spec = generate_clips(1, "day", seed=seed, seconds=2.0)[0]
    media_id, frame_ids = _clip(db, store, spec)
    with db.write() as session:
        commit_version(session, SAMPLE_DATASET, "sample clip with exact boxes", author="sample")
    _models(db)
    pushed = push_events(db, store, sample_event_lines(events, seed=seed))
    if pushed.errors:
        raise RuntimeError(f"sample events rejected: {pushed.errors[0]}")
    home = SampleHome(SAMPLE_DATASET, media_id, frame_ids, SAMPLE_MODEL)
    for i, event_id in enumerate(pushed.event_ids):
        (home.empty_event_ids if i % 3 == 2 else home.event_ids_with_boxes).append(event_id)
    return home
