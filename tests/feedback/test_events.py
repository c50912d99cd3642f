"""Pushing events: bad lines reported by number with the reason, good lines kept, idempotent ids."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cvcycle.data.ingest import IngestResult
from cvcycle.db import Database
from cvcycle.db.models import Event
from cvcycle.errors import NotFound
from cvcycle.feedback.events import MAX_SNAPSHOT_PIXELS, EventRecord, PushResult, list_events, push_events
from cvcycle.media import decode_jpeg
from cvcycle.refs import format_ref
from cvcycle.store import BlobStore

Push = Callable[[list[Any]], PushResult]


def _events(db: Database) -> list[EventRecord]:
    with db.read() as s:
        return [EventRecord.of(e) for e in s.scalars(select(Event).order_by(Event.id))]


def test_bad_lines_are_reported_by_number_and_good_lines_kept(
    db: Database, store: BlobStore, medium: IngestResult, event: Callable[..., dict[str, Any]],
    snapshot_b64: Callable[[int], str], tmp_path: Path,
) -> None:  # fmt: skip
    sha = medium.sha256
    person = {"cls": "person", "score": 0.9, "box": [4, 5, 20, 30]}
    lines = [
        event(id="a", frame={"media_sha256": sha, "index": 2}, detections=[person]),  # 1 good
        '{"source": "cam-1", "time": ',  # 2 bad JSON
        event(source=None, frame={"media_sha256": sha, "index": 0}),  # 3 missing source
        event(frame={"media_sha256": sha, "index": 1}, detections=[{**person, "box": [1, 1, -5, 4]}]),  # 4
        event(frame={"media_sha256": sha, "index": 99}),  # 5 unknown frame
        "",  # 6 blank: skipped, not an error
        event(id="b", snapshot=snapshot_b64(1), model={"name": "detector", "version": 2}),  # 7 good
        event(snapshot="missing/shot.jpg"),  # 8 unreadable snapshot
        event(time="2026-11-25T10:00:00", frame={"id": medium.frame_ids[0]}),  # 9 naive time
        event(model="detector", frame={"id": medium.frame_ids[0]}),  # 10 model without version
        event(frame={"id": medium.frame_ids[3]}, time="2026-11-25T13:30:00+03:00"),  # 11 good
        event(snapshot=base64.b64encode(b"not an image " * 30).decode()),  # 12 not an image
        "[1, 2]",  # 13 not an object
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")

    result = push_events(db, store, path)

    reasons = {e.line: e.reason for e in result.errors}
    assert sorted(reasons) == [2, 3, 4, 5, 8, 9, 10, 12, 13]
    assert reasons[2].startswith("bad JSON")
    assert reasons[3] == "missing field 'source'"
    assert "non-positive width or height" in reasons[4] and "detection 0" in reasons[4]
    assert reasons[5].startswith("unknown frame reference") and "no frame 99" in reasons[5]
    assert reasons[8].startswith("unreadable snapshot") and "shot.jpg" in reasons[8]
    assert "no UTC offset" in reasons[9]
    assert "NAME@VERSION" in reasons[10]
    assert reasons[12] == "unreadable snapshot: not an image"
    assert "JSON object" in reasons[13]
    assert str(result.errors[0]) == f"line 2: {reasons[2]}"
    assert result.kept == 3 and result.duplicates == 0 and not result.ok

    stored = _events(db)
    assert [e.id for e in stored] == result.event_ids
    first, snap, third = stored
    assert (first.external_id, first.frame_id, first.snapshot_key) == ("a", medium.frame_ids[2], None)
    assert first.detections == [{"cls": "person", "score": 0.9, "box": [4.0, 5.0, 20.0, 30.0]}]
    assert (first.width, first.height, first.model) == (64, 48, "detector@1")
    assert first.time == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert snap.model == "detector@2" and snap.frame_id is None and snap.snapshot_key is not None
    assert (snap.width, snap.height) == (64, 48)
    # The offset is kept as the instant: 13:30+03:00 is 10:30 UTC.
    assert third.time == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def test_pushing_the_same_external_ids_again_adds_nothing(
    db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    lines = [event(id=f"e{i}", frame={"id": medium.frame_ids[i]}) for i in range(3)]
    first = push([*lines, lines[0]])  # repeated within the feed too
    assert (first.kept, first.duplicates) == (3, 1)
    again = push([*lines, event(id="e9", frame={"id": medium.frame_ids[4]})])
    assert (again.kept, again.duplicates, again.errors) == (1, 3, [])
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 4


def test_events_without_ids_are_all_kept(db: Database, push: Push, medium: IngestResult, event) -> None:  # type: ignore[no-untyped-def]
    line = event(frame={"id": medium.frame_ids[0]})
    assert push([line, line]).kept == 2


def test_snapshots_are_stored_as_jpeg(
    db: Database, store: BlobStore, push: Push, event: Callable[..., dict[str, Any]],
    make_image: Callable[..., bytes], tmp_path: Path,
) -> None:  # fmt: skip
    jpeg = make_image(3)
    png = make_image(4, "PNG", (40, 30))
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "a.png").write_bytes(png)
    feed = tmp_path / "feed.jsonl"
    lines = [
        event(snapshot="data:image/jpeg;base64," + base64.b64encode(jpeg).decode()),
        event(snapshot="shots/a.png"),  # relative to the feed's directory
    ]
    feed.write_text("\n".join(json.dumps(x) for x in lines))
    result = push_events(db, store, feed)
    assert result.ok and result.kept == 2
    kept_jpeg, from_png = _events(db)
    assert store.get_bytes(kept_jpeg.snapshot_key or "") == jpeg
    data = store.get_bytes(from_png.snapshot_key or "")
    assert data[:2] == b"\xff\xd8"  # re-encoded as JPEG
    assert decode_jpeg(data).shape == (30, 40, 3) and (from_png.width, from_png.height) == (40, 30)


def test_overhanging_boxes_are_clipped_and_outside_boxes_rejected(
    db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    frame = {"id": medium.frame_ids[0]}
    result = push(
        [
            event(frame=frame, detections=[{"cls": "person", "score": 0.5, "box": [-3, 40, 20, 20]}]),
            event(frame=frame, detections=[{"cls": "person", "score": 0.5, "box": [70, 10, 5, 5]}]),
            event(frame=frame, detections=[{"cls": "person", "score": 1.5, "box": [1, 1, 5, 5]}]),
        ]
    )
    assert [e.line for e in result.errors] == [2, 3]
    assert "outside the 64x48 image" in result.errors[0].reason
    assert "score" in result.errors[1].reason
    (stored,) = _events(db)
    assert stored.detections == [{"cls": "person", "score": 0.5, "box": [0.0, 40.0, 17.0, 8.0]}]


def test_detection_class_names_follow_the_one_rule(
    db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    frame = {"id": medium.frame_ids[0]}
    names = ["person", " person", "", "x" * 101, 7]
    result = push([event(frame=frame, detections=[{"cls": n, "box": [1, 1, 5, 5]}]) for n in names])
    assert [e.line for e in result.errors] == [2, 3, 4, 5]
    assert all(e.reason.startswith("detection 0: class name") for e in result.errors)
    assert "padded" in result.errors[0].reason and "must be a string" in result.errors[3].reason
    assert [e.detections[0]["cls"] for e in _events(db)] == ["person"]


def test_a_missing_events_file_is_not_found(db: Database, store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nope\.jsonl"):
        push_events(db, store, tmp_path / "nope.jsonl")


# An event's "model" field, and the (name, version) stored or words of the reason the line is rejected:
# an event names the version that emitted it, so an alias or "latest", which move, are refused.
EVENT_MODELS: list[tuple[Any, tuple[str, int] | str]] = [
    ("detector@12", ("detector", 12)),
    (" my-model.v2@3 ", ("my-model.v2", 3)),
    ({"name": "detector", "version": 2}, ("detector", 2)),
    ({"name": "detector", "version": "4"}, ("detector", 4)),
    ("detector", "NAME@VERSION"),
    ("detector:production", "NAME@VERSION"),
    ("detector@latest", "NAME@VERSION"),
    ("detector@0", "NAME@VERSION"),
    ("detector@x", "NAME@VERSION"),
    ("detector@\u00b2", "NAME@VERSION"),
    ("@3", "NAME@VERSION"),
    ("detector@99999999999", "NAME@VERSION"),
    (7, "NAME@VERSION"),
    ({"name": "detector", "version": "latest"}, "a version number >= 1"),
    ({"name": "detector", "version": True}, "a version number >= 1"),
    ({"name": "detector", "version": 0}, "a version number >= 1"),
    ({"name": "de tector", "version": 1}, "a version number >= 1"),
    ({"name": "detector"}, "a version number >= 1"),
]


def test_an_event_names_the_model_version_that_emitted_it(
    db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    frame = {"id": medium.frame_ids[0]}
    result = push([event(frame=frame, model=model) for model, _ in EVENT_MODELS])
    reasons = {e.line: e.reason for e in result.errors}
    stored = iter(_events(db))
    for line, (model, expected) in enumerate(EVENT_MODELS, start=1):
        if isinstance(expected, tuple):
            assert line not in reasons, (model, reasons.get(line))
            e = next(stored)
            assert e.model == format_ref(*expected), model
        else:
            assert expected in reasons[line], (model, reasons[line])
    assert next(stored, None) is None


def test_listing_events_newest_first_with_filters(
    db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    frame = {"id": medium.frame_ids[0]}
    ids = push(
        [
            event(frame=frame, time="2026-11-25T10:00:00Z"),
            event(frame=frame, time="2026-11-25T12:00:00Z", source="cam-2"),
            event(frame=frame, time="2026-11-25T11:00:00Z", model="detector@2"),
        ]
    ).event_ids
    assert [e.id for e in list_events(db)] == [ids[1], ids[2], ids[0]]
    assert [e.id for e in list_events(db, model="detector@1")] == [ids[1], ids[0]]
    assert [e.id for e in list_events(db, source="cam-2")] == [ids[1]]
    assert [e.id for e in list_events(db, limit=1)] == [ids[1]]
    assert list_events(db, model="other") == []


def test_hostile_lines_are_reported_and_the_good_ones_kept(
    db: Database, store: BlobStore, medium: IngestResult, event: Callable[..., dict[str, Any]]
) -> None:
    """Out-of-range values, huge numbers, deep nesting, bad unicode and NaN: one bad line each."""
    frame = {"id": medium.frame_ids[0]}
    det = {"cls": "person", "score": 0.5, "box": [1, 1, 5, 5]}
    lines = [
        json.dumps(event(id="good-1", frame=frame)),  # 1 good
        json.dumps(event(time="99999-01-01T00:00:00Z", frame=frame)),  # 2 year out of range
        json.dumps(event(time="2026-13-01T00:00:00Z", frame=frame)),  # 3 month 13
        json.dumps(event(time="0001-01-01T00:00:00+01:00", frame=frame)),  # 4 before year 1 in UTC
        json.dumps(event(frame={"id": 2**63})),  # 5 beyond int64
        json.dumps(event(frame={"media_sha256": medium.sha256, "index": 2**70})),  # 6 beyond int64
        json.dumps(event(frame=frame, detections=[{**det, "box": [10**400, 0, 1, 1]}])),  # 7 too big
        '{"id": ' + "9" * 5000 + "}",  # 8 an integer Python will not parse
        "[" * 100_000 + "]" * 100_000,  # 9 nested too deeply
        json.dumps(event(source="cam\ud800", frame=frame)),  # 10 lone surrogate
        json.dumps(event(frame=frame, detections=[{**det, "cls": "a\udc00"}])),  # 11 lone surrogate
        json.dumps(event(id="x\ud800", frame=frame)),  # 12 lone surrogate
        json.dumps(event(frame=frame)).replace('"source"', '"extra": NaN, "source"'),  # 13 NaN
        json.dumps(event(frame=frame, detections=[{**det, "score": float("inf")}])),  # 14 Infinity
        json.dumps(event(id="good-2", frame=frame)),  # 15 good
    ]
    result = push_events(db, store, lines)

    reasons = {e.line: e.reason for e in result.errors}
    assert sorted(reasons) == list(range(2, 15))
    assert "not ISO-8601" in reasons[2] and "not ISO-8601" in reasons[3]
    assert "out of range" in reasons[4]
    assert "frame id" in reasons[5] and "frame.index" in reasons[6]
    assert "too large" in reasons[7] and "too large" in reasons[8]
    assert "nested too deeply" in reasons[9]
    assert all("lone surrogate" in reasons[n] for n in (10, 11, 12))
    assert "NaN" in reasons[13] and "Infinity" in reasons[14]
    assert result.kept == 2 and [e.external_id for e in _events(db)] == ["good-1", "good-2"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` pixels in its header, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_a_snapshot_over_the_pixel_limit_is_a_bad_line_before_decoding(
    push: Push, event: Callable[..., dict[str, Any]], make_image: Callable[..., bytes]
) -> None:
    # 8000 x 6000 = 48 megapixels claimed by a file of a few dozen bytes: refused from its header.
    huge = "data:image/png;base64," + base64.b64encode(_png_header(8000, 6000)).decode()
    result = push([event(snapshot=huge), event(snapshot=base64.b64encode(make_image(5)).decode())])
    assert result.kept == 1
    (error,) = result.errors
    assert error.line == 1 and "8000x6000" in error.reason and f"{MAX_SNAPSHOT_PIXELS:,}" in error.reason
