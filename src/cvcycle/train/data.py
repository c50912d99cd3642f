"""The frames a run trains on: the materialised Parquet manifests of its slices, pixels from the store.

A run reads exactly what the manifests of ``dataset@version`` through its train and validation
slices hold (committed versions never change, so neither do the manifests), and frame pixels
straight from the blob store by the key and size each row records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cvcycle.data.manifest import Manifest, materialize_manifest, read_manifest
from cvcycle.errors import InvalidInput
from cvcycle.media import decode_jpeg
from cvcycle.models.adapter import LabelledFrame, TrainingData
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore


@dataclass(frozen=True)
class DataSummary:
    """What the run saw, recorded with its metrics."""

    train_frames: int
    train_boxes: int
    val_frames: int
    val_boxes: int
    dropped_boxes: int  # boxes of classes outside the config's class list
    frames_in_both: int  # frames the two slices share (a leak the user may want to know about)
    manifests: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "train_frames": self.train_frames,
            "train_boxes": self.train_boxes,
            "val_frames": self.val_frames,
            "val_boxes": self.val_boxes,
            "dropped_boxes": self.dropped_boxes,
            "frames_in_both": self.frames_in_both,
            "manifests": self.manifests,
        }


class StoreFrames:
    """Reads a frame's JPEG from the store (size-checked) and decodes it to HxWx3 uint8 RGB."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def __call__(self, frame: LabelledFrame) -> np.ndarray:
        return decode_jpeg(self.store.get_bytes(frame.blob_key, frame.blob_size))


def _rows(manifest: Manifest) -> list[dict[str, Any]]:
    columns = ["frame_id", "blob_key", "blob_size", "width", "height", "boxes"]
    rows: list[dict[str, Any]] = read_manifest(manifest.path).select(columns).to_pylist()
    return rows


def _frames(rows: list[dict[str, Any]], index: dict[str, int]) -> tuple[list[LabelledFrame], int, int]:
    frames, kept, dropped = [], 0, 0
    for row in rows:
        boxes = [b for b in row["boxes"] if b["cls"] in index]
        dropped += len(row["boxes"]) - len(boxes)
        kept += len(boxes)
        xyxy = np.array([(b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]) for b in boxes], np.float32)
        frames.append(
            LabelledFrame(
                frame_id=row["frame_id"],
                blob_key=row["blob_key"],
                blob_size=row["blob_size"],
                width=row["width"],
                height=row["height"],
                boxes=xyxy.reshape(-1, 4),
                class_ids=np.array([index[b["cls"]] for b in boxes], np.int64),
            )
        )
    return frames, kept, dropped


def load_training_data(
    session: Session,
    store: BlobStore,
    dataset: DatasetRef,
    train_slice: str,
    val_slice: str,
    manifests_dir: Path,
    classes: Sequence[str] | None = None,
) -> tuple[TrainingData, DataSummary]:
    """Materialise (or reuse) both manifests and turn them into the adapter's ``TrainingData``.

    Without ``classes`` the class list is every class of the training slice, sorted by name.
    """
    train_manifest = materialize_manifest(session, dataset, train_slice, manifests_dir)
    val_manifest = materialize_manifest(session, dataset, val_slice, manifests_dir)
    train_rows, val_rows = _rows(train_manifest), _rows(val_manifest)
    if classes is None:
        classes = sorted({b["cls"] for row in train_rows for b in row["boxes"]})
    if not classes:
        raise InvalidInput(
            f"the slice {train_slice!r} of {dataset} has no boxes to learn classes from",
            hint="label boxes first, or pick another --train-slice",
        )
    index = {name: i for i, name in enumerate(classes)}
    train, train_boxes, train_dropped = _frames(train_rows, index)
    val, val_boxes, val_dropped = _frames(val_rows, index)
    shared = {f.frame_id for f in train} & {f.frame_id for f in val}
    data = TrainingData(tuple(classes), train, val, StoreFrames(store))
    summary = DataSummary(
        train_frames=len(train),
        train_boxes=train_boxes,
        val_frames=len(val),
        val_boxes=val_boxes,
        dropped_boxes=train_dropped + val_dropped,
        frames_in_both=len(shared),
        manifests={"train": str(train_manifest.path), "val": str(val_manifest.path)},
    )
    return data, summary
