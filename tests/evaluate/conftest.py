"""Evaluation test parts: real predictors that answer with the ground truth of the frame they are
shown (looked up by its decoded pixels), whole or degraded, so every expected figure can be worked out;
and short synthetic clips put into a dataset through the data layer, without encoding video."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from cvcycle.boxes import Box
from cvcycle.data.ingest import IngestResult, record_media
from cvcycle.data.labels import BoxInput, SegmentInput, add_boxes, add_segments
from cvcycle.db import Database
from cvcycle.db.models import Media
from cvcycle.evaluate.metrics import FrameTruth
from cvcycle.evaluate.service import EvalFrame
from cvcycle.media import decode_jpeg, encode_jpeg
from cvcycle.models.detections import Detections
from cvcycle.store import BlobStore
from cvcycle.synth import generate_clips, render_frames

CLASSES = ("person", "fallen_person")


def pixels_key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


class TruthPredictor:
    """Finds exactly the ground-truth boxes (score 0.95), or a degraded version of them.

    ``drop_every_other`` keeps boxes 0, 2, 4... counted over all the frames it is given, in order
    (so a set of one-person frames loses every other frame's person); ``false_boxes`` adds that many
    boxes of class person (score 0.9) in the top-left corner, where nothing is.
    """

    def __init__(
        self,
        frames: Iterable[EvalFrame],
        *,
        version: str = "truth",
        drop_every_other: bool = False,
        false_boxes: int = 0,
    ) -> None:
        self.classes = CLASSES
        self.version = version
        self.false_boxes = false_boxes
        self.calls = 0
        self._truth: dict[str, FrameTruth] = {}
        self._boxes: dict[str, tuple[Box, ...]] = {}
        counted = 0
        for frame in frames:
            key = pixels_key(decode_jpeg(frame.jpeg))
            known = self._truth.setdefault(key, frame.truth)
            # Two frames with the same pixels must show the same boxes, or the lookup would lie.
            assert sorted(known.boxes, key=repr) == sorted(frame.truth.boxes, key=repr), "ambiguous frame"
            if key in self._boxes:
                continue
            boxes = frame.truth.boxes
            if drop_every_other:
                boxes = tuple(b for k, b in enumerate(boxes, start=counted) if k % 2 == 0)
            counted += len(frame.truth.boxes)
            self._boxes[key] = boxes

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.0) -> list[Detections]:
        self.calls += 1
        out = []
        for image in images:
            boxes = self._boxes[pixels_key(image)]
            xyxy = [(b.x, b.y, b.x + b.w, b.y + b.h) for b in boxes]
            scores = [0.95] * len(boxes)
            ids = [CLASSES.index(b.cls) for b in boxes]
            for k in range(self.false_boxes):
                xyxy.append((2.0 + k, 2.0, 30.0 + k, 40.0))
                scores.append(0.9)
                ids.append(0)
            if not xyxy:
                out.append(Detections.empty(CLASSES))
                continue
            out.append(Detections(np.array(xyxy), np.array(scores), np.array(ids), CLASSES).above(threshold))
        return out


@dataclass(frozen=True)
class Predictors:
    truth: type[TruthPredictor] = TruthPredictor


@pytest.fixture
def predictors() -> Predictors:
    """The predictor classes (conftest modules are not importable by name under importlib mode)."""
    return Predictors()


AddClips = Callable[..., list[IngestResult]]


@pytest.fixture
def add_clips(db: Database, store: BlobStore) -> AddClips:
    """Render ``clips`` synthetic clips of ``seconds`` into a dataset's working copy with their exact
    boxes and fall segments: ``add_synthetic_clips`` without the H.264 round trip, and shorter."""

    def add(
        name: str, lighting: str, *, clips: int = 2, dogs: bool = False, seconds: float = 3.0
    ) -> list[IngestResult]:
        results = []
        for spec in generate_clips(clips, lighting, dogs, seed=1, seconds=seconds):
            blobs = [store.put_bytes(encode_jpeg(image)) for image in render_frames(spec)]
            media = Media(
                sha256=hashlib.sha256(f"{spec.name}/{spec.seed}/{seconds}".encode()).hexdigest(),
                kind="video",
                file_name=f"{spec.name}.mp4",
                blob_key=blobs[0].key,
                size=blobs[0].size,
                width=spec.width,
                height=spec.height,
                fps=float(spec.fps),
                frame_count=spec.num_frames,
                duration_s=spec.num_frames / spec.fps,
                codec="h264",
                source="synth",
                attributes=dict(spec.attributes),
            )
            rows = [
                {
                    "index": i,
                    "timestamp_s": i / spec.fps,
                    "blob_key": blob.key,
                    "blob_size": blob.size,
                    "width": spec.width,
                    "height": spec.height,
                }
                for i, blob in enumerate(blobs)
            ]
            with db.write() as session:
                result = record_media(session, name, media, rows)
                ids = result.frame_ids
                add_boxes(
                    session,
                    name,
                    [
                        BoxInput(ids[b.frame_index], b.cls, b.x, b.y, b.w, b.h, b.track_id, source="import")
                        for b in spec.boxes
                    ],
                )
                segments = [
                    SegmentInput(media.id, s.cls, s.start_frame, s.end_frame, s.track_id, source="import")
                    for s in spec.segments
                ]
                add_segments(session, name, segments)
            results.append(result)
        return results

    return add
