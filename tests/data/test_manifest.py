"""Parquet training manifests: content, caching per (version, slice), refusal of the working copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvcycle.data.labels import BoxInput, add_boxes
from cvcycle.data.manifest import materialize_manifest, read_manifest
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.errors import InvalidInput
from cvcycle.refs import DatasetRef


def test_manifest_has_frames_blobs_and_boxes_and_is_cached(
    db: Database,
    make_medium,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    night = make_medium("home", 3, lighting="night")
    make_medium("home", 2, lighting="day")
    with db.write() as s:
        add_boxes(
            s,
            "home",
            [
                BoxInput(frame_id=night.frame_ids[0], cls="person", x=1, y=2, w=3, h=4, track_id=7),
                BoxInput(frame_id=night.frame_ids[1], cls="fallen_person", x=5, y=6, w=7, h=8),
            ],
        )
        commit_version(s, "home", "v1")
    with db.read() as s:
        manifest = materialize_manifest(s, DatasetRef("home", 1), "lighting=night", tmp_path)
        again = materialize_manifest(s, DatasetRef("home", 1), "lighting=night", tmp_path)
        everything = materialize_manifest(s, DatasetRef("home", 1), None, tmp_path)
    assert (manifest.frames, manifest.boxes, manifest.cached) == (3, 2, False)
    assert again.cached and again.path == manifest.path
    assert everything.frames == 5 and everything.path != manifest.path
    table = read_manifest(manifest.path).to_pylist()
    assert [row["frame_id"] for row in table] == night.frame_ids
    assert table[0]["boxes"] == [
        {"label_id": 1, "cls": "person", "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0, "track_id": 7}
    ]
    assert table[1]["boxes"][0]["cls"] == "fallen_person" and table[2]["boxes"] == []
    assert all(len(row["blob_key"]) == 64 and row["blob_size"] > 0 for row in table)


def test_manifest_of_working_copy_is_refused(db: Database, make_medium, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_medium("home", 1)
    with pytest.raises(InvalidInput, match="committed version"), db.read() as s:
        materialize_manifest(s, DatasetRef("home"), None, tmp_path)
