"""A blob damaged on disk is never served: frame images and event images answer a JSON error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from cvcycle.data.ingest import ingest_file
from cvcycle.db.models import Event, Frame, Media
from cvcycle.media import write_video
from cvcycle.store import BlobStore

# The fixture ``app`` (tests/api/conftest.py) is a FilledApp record.
FilledApp = Any


def damage(store: BlobStore, key: str) -> None:
    """Flip one byte of the stored file behind the store's back: same size, other bytes."""
    path = store.local_path(key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_corrupt_answer(response: Any, key: str) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "hint"}
    assert key in body["error"] and "corrupt" in body["error"]
    assert "cvcycle store verify" in body["hint"]
    assert "Traceback" not in response.text


def test_a_damaged_stored_frame_is_an_error_not_an_image(app: FilledApp) -> None:
    with app.db.read() as s:
        frame = s.scalars(select(Frame).where(Frame.media_id == app.sample.media_id, Frame.index == 3)).one()
    url = f"/api/media/{app.sample.media_id}/frames/3.jpg"
    assert app.client.get(url).status_code == 200
    damage(app.store, frame.blob_key)

    assert_corrupt_answer(app.client.get(url), frame.blob_key)


def test_a_damaged_video_is_an_error_for_the_frames_decoded_from_it(app: FilledApp, tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), (40 * i) % 256, np.uint8) for i in range(12)]
    path = tmp_path / "clip.mp4"
    write_video(frames, path, fps=10)
    result = ingest_file(app.db, app.store, "sparse", path, every=5)  # frames 0, 5, 10 are stored
    with app.db.read() as s:
        video = s.get(Media, result.media_id)
        assert video is not None
    url = f"/api/media/{result.media_id}/frames/7.jpg"
    assert app.client.get(url).status_code == 200
    damage(app.store, video.blob_key)  # after a good read: the remembered check must not hold

    assert_corrupt_answer(app.client.get(url), video.blob_key)
    assert_corrupt_answer(app.client.get(url, params={"near": "keyframe"}), video.blob_key)


def test_a_damaged_event_snapshot_is_an_error_not_an_image(app: FilledApp) -> None:
    with app.db.read() as s:
        event = s.scalars(select(Event).where(Event.snapshot_key.is_not(None)).order_by(Event.id)).first()
    assert event is not None and event.snapshot_key is not None
    url = f"/api/events/{event.id}/image"
    assert app.client.get(url).status_code == 200
    damage(app.store, event.snapshot_key)

    assert_corrupt_answer(app.client.get(url), event.snapshot_key)
