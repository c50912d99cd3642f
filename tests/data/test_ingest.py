"""Media ingest into a dataset: real videos and images, dedup, and bad files that leave nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from cvcycle.data.ingest import ingest_file, ingest_files
from cvcycle.db import Database
from cvcycle.db.models import DatasetFrame, Frame, Media
from cvcycle.errors import InvalidMedia
from cvcycle.media import decode_jpeg, write_video
from cvcycle.store import BlobStore


def _video(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    w, h = size
    images = []
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i * 5) % w] = (200, 50, 50)
        images.append(img)
    write_video(images, path, fps=10)
    return path


def _rows(db: Database) -> tuple[int, int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Media)) or 0,
            s.scalar(select(func.count()).select_from(Frame)) or 0,
            s.scalar(select(func.count()).select_from(DatasetFrame)) or 0,
        )


def test_video_and_image_become_frames_with_jpeg_blobs(
    db: Database, store: BlobStore, tmp_path: Path
) -> None:
    video = _video(tmp_path / "clip.mp4", 12)
    image = tmp_path / "still.png"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(image)
    results = ingest_files(db, store, "cams", [video, image], source="cam-3", every=3)
    assert [r.status for r in results] == ["ingested", "ingested"]
    assert results[0].frames == 4 and results[1].frames == 1
    with db.read() as s:
        frames = s.execute(
            select(Frame.index, Frame.timestamp_s, Frame.blob_key, Frame.blob_size).order_by(Frame.id)
        ).all()
        media = s.scalars(select(Media).order_by(Media.id)).all()
    assert [f.index for f in frames] == [0, 3, 6, 9, 0]
    assert frames[1].timestamp_s == pytest.approx(0.3, abs=0.01)
    assert media[0].source == "cam-3" and media[0].kind == "video" and media[1].kind == "image"
    pixels = decode_jpeg(store.get_bytes(frames[-1].blob_key, frames[-1].blob_size))
    assert pixels.shape == (30, 40, 3) and abs(int(pixels[..., 1].mean()) - 200) < 6
    assert store.exists(media[0].blob_key)  # the original file is kept too


def test_same_file_twice_is_a_no_op(db: Database, store: BlobStore, tmp_path: Path) -> None:
    video = _video(tmp_path / "clip.mp4")
    first = ingest_file(db, store, "cams", video)
    before = _rows(db)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(video.read_bytes())
    second = ingest_file(db, store, "cams", copy)
    assert (first.status, second.status) == ("ingested", "unchanged")
    assert second.media_id == first.media_id
    assert _rows(db) == before
    other = ingest_file(db, store, "other", video)  # known bytes, new dataset: linked, not decoded
    assert other.status == "linked" and other.frames == first.frames


def _truncated(tmp_path: Path) -> Path:
    good = _video(tmp_path / "good.mp4", 40, (160, 120))
    data = good.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize("kind", ["text", "empty", "truncated"])
def test_bad_file_is_named_others_go_in_and_nothing_of_it_remains(
    db: Database, store: BlobStore, tmp_path: Path, kind: str
) -> None:
    good = _video(tmp_path / "ok.mp4")
    if kind == "text":
        bad = tmp_path / "notes.mp4"
        bad.write_text("this is not a video\n")
    elif kind == "empty":
        bad = tmp_path / "empty.mp4"
        bad.write_bytes(b"")
    else:
        bad = _truncated(tmp_path)
    keys_before = set(store.iter_keys())
    results = ingest_files(db, store, "cams", [bad, good])
    assert [r.status for r in results] == ["failed", "ingested"]
    assert results[0].error is not None and bad.name in results[0].error
    media, frames, members = _rows(db)
    assert (media, frames, members) == (1, results[1].frames, results[1].frames)
    with db.read() as s:
        used = set(s.scalars(select(Frame.blob_key))) | set(s.scalars(select(Media.blob_key)))
    assert set(store.iter_keys()) - keys_before == used  # no blob of the bad file is left


def test_missing_file_is_invalid_media(db: Database, store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"nope\.mp4"):
        ingest_file(db, store, "cams", tmp_path / "nope.mp4")
