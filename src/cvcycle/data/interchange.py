"""Import and export of datasets in COCO detection format (images + annotations.json).

Export copies each frame's JPEG blob byte for byte, so an export re-imported lands on the same
blobs. Import validates the whole file and every image before it writes anything, then writes in
one transaction: a bad file imports nothing. An imported frame that is already in the dataset
gets the file's boxes in place of its own, as CVAT does when annotations are uploaded again;
identical boxes are left alone, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import lock_dataset
from cvcycle.data.formats.coco import (
    CocoAnnotation,
    CocoCategory,
    CocoDocument,
    CocoImage,
    read_coco,
    write_coco,
)
from cvcycle.data.formats.paths import resolve_inside
from cvcycle.data.ingest import forget_unreferenced_blobs
from cvcycle.data.labels import BoxInput, add_boxes, add_frames
from cvcycle.data.selection import resolve_selection
from cvcycle.data.slices import assign_split
from cvcycle.data.snapshot import iter_boxes, snapshot_frames
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import Frame, Label, Media
from cvcycle.errors import InvalidInput
from cvcycle.media import encode_jpeg
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore


def _image_file_name(file_name: str, sha: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(file_name).stem)[:40] or "media"
    return f"{stem}-{sha[:10]}-{index:06d}.jpg"


def export_coco(
    session: Session, store: BlobStore, ref: DatasetRef, slice_text: str | None, out_dir: Path
) -> dict[str, Any]:
    """Write ``out_dir/annotations.json`` and ``out_dir/images/`` for a version through a slice."""
    selection = resolve_selection(session, ref, slice_text)
    resolved = selection.ref
    frames = snapshot_frames(session, selection)
    classes = sorted(
        set(
            session.scalars(
                select(Label.cls)
                .where(Label.dataset_id == resolved.dataset.id, visible_at(Label, resolved.version))
                .distinct()
            )
        )
    )
    category_id = {cls: i + 1 for i, cls in enumerate(classes)}
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for i, frame in enumerate(frames):
        file_name = _image_file_name(frame.file_name, frame.media_sha256, frame.index)
        target = images_dir / file_name
        if not target.exists() or target.stat().st_size != frame.blob_size:
            shutil.copyfile(store.local_path(frame.blob_key, frame.blob_size), target)
        images.append(
            CocoImage(
                id=i + 1,
                file_name=file_name,
                width=frame.width,
                height=frame.height,
                extra={
                    "cvcycle": {
                        "media_sha256": frame.media_sha256,
                        "media_file": frame.file_name,
                        "frame_index": frame.index,
                        "timestamp_s": frame.timestamp_s,
                        "source": frame.source,
                        "split": frame.split,
                        "attributes": frame.media_attributes,
                    }
                },
            )
        )
    image_id = {f.frame_id: i + 1 for i, f in enumerate(frames)}
    annotations: list[CocoAnnotation] = []
    for box in iter_boxes(session, selection):
        extra: dict[str, Any] = {"attributes": box.attributes or {}, "source": box.source}
        if box.track_id is not None:
            extra["track_id"] = box.track_id
        if box.score is not None:
            extra["score"] = box.score
        annotations.append(
            CocoAnnotation(
                id=len(annotations) + 1,
                image_id=image_id[box.frame_id],
                category_id=category_id[box.cls],
                bbox=(box.x, box.y, box.w, box.h),
                area=box.w * box.h,
                iscrowd=0,
                extra=extra,
            )
        )
    doc = CocoDocument(
        images=tuple(images),
        annotations=tuple(annotations),
        categories=tuple(CocoCategory(id=i, name=c, supercategory="") for c, i in category_id.items()),
        info={"description": f"cvcycle export of {resolved.label}", "version": str(resolved.version)},
    )
    write_coco(doc, out_dir / "annotations.json")
    return {
        "dataset": resolved.dataset.name,
        "version": resolved.version if resolved.committed else None,
        "slice": slice_text or "all",
        "images": len(images),
        "annotations": len(annotations),
        "categories": classes,
        "path": str(out_dir / "annotations.json"),
    }


@dataclass
class _ImageFile:
    image: CocoImage
    sha256: str
    media_bytes: bytes
    jpeg: bytes


def _load_image(images_dir: Path, image: CocoImage, i: int, source: str) -> _ImageFile:
    where = f"{source}: images[{i}] ({image.file_name})"
    path = resolve_inside(images_dir, image.file_name, f"{source}: images[{i}].file_name")
    if not path.is_file():
        raise InvalidInput(f"{where}: no such file in {images_dir}", hint="check --images")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
            fmt = img.format
            if fmt != "JPEG":
                img.load()
                jpeg = encode_jpeg(np.asarray(img.convert("RGB")))
            else:
                img.verify()
                jpeg = data
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"{where}: not a readable image ({exc})") from exc
    if size != (image.width, image.height):
        raise InvalidInput(
            f"{where}: the file is {size[0]}x{size[1]}, the annotation says {image.width}x{image.height}"
        )
    return _ImageFile(image, hashlib.sha256(data).hexdigest(), data, jpeg)


def _same_boxes(existing: list[Label], new: list[BoxInput]) -> bool:
    def norm(cls: str, x: float, y: float, w: float, h: float) -> tuple[str, float, float, float, float]:
        return (cls, round(x, 2), round(y, 2), round(w, 2), round(h, 2))

    return sorted(norm(b.cls, b.x, b.y, b.w, b.h) for b in existing) == sorted(
        norm(b.cls, b.x, b.y, b.w, b.h) for b in new
    )


def import_coco(
    db: Database, store: BlobStore, annotations: Path, images_dir: Path, name: str
) -> dict[str, Any]:
    """Import a COCO file and its images into the working copy of dataset ``name``."""
    doc = read_coco(annotations)
    source = annotations.name
    files = [_load_image(images_dir, image, i, source) for i, image in enumerate(doc.images)]
    categories = {c.id: c.name for c in doc.categories}
    by_image: dict[int, list[CocoAnnotation]] = defaultdict(list)
    for ann in doc.annotations:
        if ann.iscrowd:
            continue  # crowd regions are "ignore" areas in COCO, not objects
        by_image[ann.image_id].append(ann)
    written: set[str] = set()
    try:
        for f in files:
            written.update(ref.key for ref in store.put_many([f.media_bytes, f.jpeg]))
        with db.write() as session:
            dataset = lock_dataset(session, name, create=True)
            frame_of_image: dict[int, Frame] = {}
            new_media = 0
            for f in files:
                media = session.scalar(select(Media).where(Media.sha256 == f.sha256))
                if media is None:
                    extra = _dict_or_empty(f.image.extra.get("cvcycle"))
                    attributes = _dict_or_empty(extra.get("attributes"))
                    media = Media(
                        sha256=f.sha256,
                        kind="image",
                        file_name=f.image.file_name,
                        blob_key=f.sha256,
                        size=len(f.media_bytes),
                        width=f.image.width,
                        height=f.image.height,
                        fps=None,
                        frame_count=1,
                        duration_s=None,
                        codec="jpeg",
                        sample_every=1,
                        source=str(extra.get("source", "")),
                        attributes=dict(attributes),
                    )
                    session.add(media)
                    session.flush()
                    jpeg_key = hashlib.sha256(f.jpeg).hexdigest()
                    frame = Frame(
                        media_id=media.id,
                        index=0,
                        timestamp_s=0.0,
                        blob_key=jpeg_key,
                        blob_size=len(f.jpeg),
                        width=f.image.width,
                        height=f.image.height,
                    )
                    session.add(frame)
                    session.flush()
                    new_media += 1
                else:
                    found = session.scalar(select(Frame).where(Frame.media_id == media.id, Frame.index == 0))
                    assert found is not None
                    frame = found
                assign_split(session, dataset, media.id)
                frame_of_image[f.image.id] = frame
            frames_added = add_frames(session, dataset, [fr.id for fr in frame_of_image.values()])
            boxes: list[BoxInput] = []
            replaced = 0
            version = dataset.working_version
            for image_id, frame in frame_of_image.items():
                incoming = [
                    BoxInput(
                        frame_id=frame.id,
                        cls=categories[a.category_id],
                        x=a.bbox[0],
                        y=a.bbox[1],
                        w=a.bbox[2],
                        h=a.bbox[3],
                        track_id=_int_or_none(a.extra.get("track_id")),
                        score=_float_or_none(a.extra.get("score")),
                        source="import",
                        attributes=a.extra.get("attributes")
                        if isinstance(a.extra.get("attributes"), dict)
                        else None,
                    )
                    for a in by_image.get(image_id, [])
                ]
                existing = list(
                    session.scalars(
                        select(Label).where(
                            Label.dataset_id == dataset.id,
                            Label.frame_id == frame.id,
                            visible_at(Label, version),
                        )
                    )
                )
                if _same_boxes(existing, incoming):
                    continue
                for label in existing:
                    label.deleted_v = version
                    replaced += 1
                boxes.extend(incoming)
            session.flush()
            add_boxes(session, name, boxes, author="import")
    except BaseException:
        forget_unreferenced_blobs(db, store, written)
        raise
    return {
        "dataset": name,
        "images": len(files),
        "new_media": new_media,
        "frames_added": frames_added,
        "boxes_added": len(boxes),
        "boxes_replaced": replaced,
    }


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
