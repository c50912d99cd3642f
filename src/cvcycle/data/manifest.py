"""Training manifests: a committed version (through a slice) as one Parquet file.

One row per frame: its blob key and size (so a worker fetches pixels straight from the store),
frame geometry, media identity and split, and the boxes as a list column. Manifests are cached
by (dataset, version, slice): a committed version never changes, so neither does its manifest.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from cvcycle.data.datasets import ResolvedRef, resolve_ref
from cvcycle.data.slices import slice_spec
from cvcycle.data.snapshot import boxes_query, snapshot_frames
from cvcycle.db.models import Label
from cvcycle.errors import InvalidInput
from cvcycle.refs import DatasetRef

BOX_TYPE = pa.struct(
    [
        ("label_id", pa.int64()),
        ("cls", pa.string()),
        ("x", pa.float32()),
        ("y", pa.float32()),
        ("w", pa.float32()),
        ("h", pa.float32()),
        ("track_id", pa.int64()),
    ]
)
MANIFEST_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("media_id", pa.int64()),
        ("media_sha256", pa.string()),
        ("frame_index", pa.int32()),
        ("timestamp_s", pa.float64()),
        ("blob_key", pa.string()),
        ("blob_size", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("split", pa.string()),
        ("boxes", pa.list_(BOX_TYPE)),
    ]
)


@dataclass(frozen=True)
class Manifest:
    path: Path
    dataset: str
    version: int
    slice: str
    frames: int
    boxes: int
    cached: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "dataset": self.dataset,
            "version": self.version,
            "slice": self.slice,
            "frames": self.frames,
            "boxes": self.boxes,
            "cached": self.cached,
        }


def _file_name(version: int, slice_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", slice_name)[:60]
    digest = hashlib.sha256(slice_name.encode()).hexdigest()[:10]
    return f"v{version}-{safe}-{digest}.parquet"


def materialize_manifest(
    session: Session, ref: DatasetRef, slice_text: str | None, manifests_dir: Path
) -> Manifest:
    """Write (or reuse) the Parquet manifest of a committed version through a slice."""
    resolved = resolve_ref(session, ref)
    if not resolved.committed:
        raise InvalidInput(
            f"{ref.name} names the working copy, which changes; a manifest needs a committed version",
            hint=f"use {ref.name}@N or {ref.name}@latest, or commit first",
        )
    spec = slice_spec(session, resolved, slice_text)
    # A stored slice can be redefined in later versions; its definition at this version is the key.
    cache_key = spec.filter or (f"list:{spec.name}" if spec.frame_ids is not None else spec.name)
    path = manifests_dir / resolved.dataset.name / _file_name(resolved.version, cache_key)
    if path.exists():
        meta = pq.read_metadata(path)
        boxes = int((meta.metadata or {}).get(b"cvcycle.boxes", b"0"))
        return Manifest(path, resolved.dataset.name, resolved.version, spec.name, meta.num_rows, boxes, True)

    frames = snapshot_frames(session, resolved, slice_text)
    boxes_column, count = _boxes_column(session, resolved, slice_text, [f.frame_id for f in frames])
    table = pa.table(
        {
            "frame_id": pa.array([f.frame_id for f in frames], pa.int64()),
            "media_id": pa.array([f.media_id for f in frames], pa.int64()),
            "media_sha256": pa.array([f.media_sha256 for f in frames], pa.string()),
            "frame_index": pa.array([f.index for f in frames], pa.int32()),
            "timestamp_s": pa.array([f.timestamp_s for f in frames], pa.float64()),
            "blob_key": pa.array([f.blob_key for f in frames], pa.string()),
            "blob_size": pa.array([f.blob_size for f in frames], pa.int64()),
            "width": pa.array([f.width for f in frames], pa.int32()),
            "height": pa.array([f.height for f in frames], pa.int32()),
            "split": pa.array([f.split for f in frames], pa.string()),
            "boxes": boxes_column,
        },
        schema=MANIFEST_SCHEMA.with_metadata(
            {
                "cvcycle.dataset": resolved.dataset.name,
                "cvcycle.version": str(resolved.version),
                "cvcycle.slice": spec.name,
                "cvcycle.boxes": str(count),
            }
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Manifest(path, resolved.dataset.name, resolved.version, spec.name, len(frames), count, False)


def _boxes_column(
    session: Session, ref: ResolvedRef, slice_text: str | None, frame_ids: list[int]
) -> tuple[pa.ListArray, int]:
    """The boxes of each frame as one list column, built column-wise (a million boxes in a second)."""
    position = {frame_id: i for i, frame_id in enumerate(frame_ids)}
    query = boxes_query(
        session, ref, slice_text,
        Label.frame_id, Label.id, Label.cls, Label.x, Label.y, Label.w, Label.h, Label.track_id,
    )  # fmt: skip
    rows = session.execute(query).all()
    names = ("frame_id", "label_id", "cls", "x", "y", "w", "h", "track_id")
    columns: dict[str, Any] = (
        dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {n: () for n in names}
    )
    columns["pos"] = [position[f] for f in columns["frame_id"]]
    pos = np.asarray(columns["pos"], dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    struct = pa.StructArray.from_arrays(
        [pa.array(columns[field.name], field.type).take(pa.array(order)) for field in BOX_TYPE],
        fields=list(BOX_TYPE),
    )
    counts = np.bincount(pos, minlength=len(frame_ids)) if len(pos) else np.zeros(len(frame_ids), np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=pa.list_(BOX_TYPE)), len(pos)


def read_manifest(path: Path) -> pa.Table:
    return pq.read_table(path)
