"""Media ingest: files into content-addressed media, JPEG frame blobs and dataset membership.

Each file is ingested in its own transaction, so one bad file never costs the others. A file that
fails leaves nothing behind: no rows, and none of the blobs it wrote unless something else
already references them. A file whose bytes are already known is not decoded again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cvcycle.data.blobs import referenced_keys
from cvcycle.data.datasets import lock_dataset
from cvcycle.data.labels import add_frames
from cvcycle.data.slices import assign_split
from cvcycle.db.engine import Database
from cvcycle.db.models import Frame, Media
from cvcycle.errors import InvalidInput, InvalidMedia
from cvcycle.media import iter_jpeg_frames, probe
from cvcycle.refs import check_dataset_name
from cvcycle.store import BlobStore
from cvcycle.store.layout import hash_file

# (description, frames done in this file, frames expected in this file or None)
ProgressFn = Callable[[str, int, int | None], None]
BLOB_BATCH = 64


@dataclass
class IngestResult:
    path: Path
    status: str  # ingested | linked | unchanged | failed
    media_id: int | None = None
    sha256: str | None = None
    frames: int = 0
    split: str | None = None
    error: str | None = None
    frame_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "status": self.status,
            "media_id": self.media_id,
            "sha256": self.sha256,
            "frames": self.frames,
            "split": self.split,
            "error": self.error,
        }


def _link_existing(session: Session, name: str, media: Media) -> IngestResult:
    dataset = lock_dataset(session, name, create=True)
    frame_ids = [
        int(i)
        for i in session.scalars(select(Frame.id).where(Frame.media_id == media.id).order_by(Frame.index))
    ]
    split = assign_split(session, dataset, media.id)
    added = add_frames(session, dataset, frame_ids)
    status = "linked" if added else "unchanged"
    return IngestResult(
        Path(media.file_name), status, media.id, media.sha256, len(frame_ids), split, frame_ids=frame_ids
    )


def forget_unreferenced_blobs(db: Database, store: BlobStore, keys: set[str]) -> None:
    """Delete blobs written for a failed file unless a row references them."""
    if not keys:
        return
    with db.read() as session:
        used = referenced_keys(session, among=keys)
    for key in keys - used:
        if store.exists(key):
            store.delete(key)


def record_media(session: Session, name: str, media: Media, frames: list[dict[str, Any]]) -> IngestResult:
    """Insert a new medium and its frames (dicts of Frame columns) and put them in the working copy."""
    dataset = lock_dataset(session, name, create=True)
    session.add(media)
    session.flush()
    for row in frames:
        row["media_id"] = media.id
    frame_ids: list[int] = []
    for start in range(0, len(frames), 20_000):
        batch = frames[start : start + 20_000]
        frame_ids.extend(
            int(i)
            for i in session.scalars(insert(Frame).returning(Frame.id, sort_by_parameter_order=True), batch)
        )
    split = assign_split(session, dataset, media.id)
    add_frames(session, dataset, frame_ids)
    return IngestResult(
        Path(media.file_name), "ingested", media.id, media.sha256, len(frame_ids), split, frame_ids=frame_ids
    )


def ingest_file(
    db: Database,
    store: BlobStore,
    name: str,
    path: Path,
    *,
    source: str = "",
    every: int = 1,
    attributes: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Ingest one file into dataset ``name``; raises InvalidMedia, leaving nothing of the file behind."""
    if every < 1:
        raise InvalidInput(f"--every must be at least 1, got {every}")
    check_dataset_name(name)
    if not path.is_file():
        raise InvalidMedia(f"{path}: no such file")
    sha = hash_file(path)
    with db.write() as session:
        media = session.scalar(select(Media).where(Media.sha256 == sha))
        if media is not None:
            result = _link_existing(session, name, media)
            result.path = path
            return result
    info = probe(path)
    written: set[str] = set()
    try:
        media_blob = store.put_file(path)
        written.add(media_blob.key)
        expected = -(-info.frame_count // every) if info.frame_count else None
        rows: list[dict[str, Any]] = []
        pending: list[Any] = []

        def flush() -> None:
            refs = store.put_many([f.jpeg for f in pending])
            for frame, ref in zip(pending, refs, strict=True):
                written.add(ref.key)
                rows.append(
                    {
                        "index": frame.index,
                        "timestamp_s": frame.timestamp_s,
                        "blob_key": ref.key,
                        "blob_size": ref.size,
                        "width": frame.width,
                        "height": frame.height,
                    }
                )
            pending.clear()
            if progress:
                progress(path.name, len(rows), expected)

        for frame in iter_jpeg_frames(path, every=every):
            pending.append(frame)
            if len(pending) >= BLOB_BATCH:
                flush()
        flush()
        with db.write() as session:
            media = Media(
                sha256=sha,
                kind=info.kind,
                file_name=path.name,
                blob_key=media_blob.key,
                size=media_blob.size,
                width=info.width,
                height=info.height,
                fps=info.fps,
                frame_count=info.frame_count or len(rows),
                duration_s=info.duration_s,
                codec=info.codec,
                sample_every=every,
                source=source,
                attributes=dict(attributes or {}),
            )
            result = record_media(session, name, media, rows)
            result.path = path
            return result
    except BaseException:
        forget_unreferenced_blobs(db, store, written)
        raise


def ingest_files(
    db: Database,
    store: BlobStore,
    name: str,
    paths: Sequence[Path],
    *,
    source: str = "",
    every: int = 1,
    progress: ProgressFn | None = None,
) -> list[IngestResult]:
    """Ingest several files; a bad file is reported in its result and the others go on."""
    results = []
    for path in paths:
        try:
            results.append(ingest_file(db, store, name, path, source=source, every=every, progress=progress))
        except InvalidMedia as exc:
            results.append(IngestResult(path, "failed", error=str(exc)))
    return results


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the files inside given directories (sorted, hidden ones skipped)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
        else:
            out.append(path)
    return out
