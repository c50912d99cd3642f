"""COCO export and import against the database: round trip, re-import, and all-or-nothing failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cvcycle.data.interchange import export_coco, import_coco
from cvcycle.data.labels import BoxInput, add_boxes
from cvcycle.data.snapshot import show_dataset
from cvcycle.data.versions import ClassChange, commit_version, working_copy_changes
from cvcycle.db import Database
from cvcycle.db.models import Label, Media
from cvcycle.errors import InvalidInput
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore


@pytest.fixture
def exported(db: Database, store: BlobStore, make_medium, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 4, lighting="night")
    with db.write() as s:
        add_boxes(
            s,
            "home",
            [BoxInput(frame_id=f, cls="person", x=2, y=3, w=10, h=20, track_id=1) for f in medium.frame_ids]
            + [BoxInput(frame_id=medium.frame_ids[0], cls="fallen_person", x=30, y=20, w=20, h=10)],
        )
        commit_version(s, "home", "v1")
    out = tmp_path / "out"
    with db.read() as s:
        result = export_coco(s, store, DatasetRef("home", 1), None, out)
    assert (result["images"], result["annotations"]) == (4, 5)
    return out


def test_export_then_import_gives_the_same_counts(db: Database, store: BlobStore, exported: Path) -> None:
    doc = json.loads((exported / "annotations.json").read_text())
    assert {c["name"] for c in doc["categories"]} == {"fallen_person", "person"}
    assert doc["images"][0]["cvcycle"]["attributes"] == {"lighting": "night"}
    result = import_coco(db, store, exported / "annotations.json", exported / "images", "copy")
    assert result["boxes_added"] == 5
    with db.read() as s:
        original = show_dataset(s, DatasetRef("home", 1))
        copy = show_dataset(s, DatasetRef("copy"))
        attributes = [dict(a) for a in s.scalars(select(Media.attributes).where(Media.kind == "image"))]
    assert copy.frames == original.frames == 4
    assert copy.labels == original.labels
    assert attributes == [{"lighting": "night"}] * 4


def test_importing_the_same_file_twice_changes_nothing(
    db: Database, store: BlobStore, exported: Path
) -> None:
    import_coco(db, store, exported / "annotations.json", exported / "images", "copy")
    with db.write() as s:
        commit_version(s, "copy", "imported")
    again = import_coco(db, store, exported / "annotations.json", exported / "images", "copy")
    assert again["boxes_added"] == 0 and again["frames_added"] == 0
    with db.read() as s:
        change = working_copy_changes(s, "copy")
    assert change.labels == ClassChange(added={}, removed={})


def _count_labels(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Label)) or 0)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d["annotations"][2].update(bbox=[1, 2, 3]), r"annotations\[2\]\.bbox"),
        (lambda d: d["annotations"][1].update(image_id=999), "no image with id 999"),
        (
            lambda d: d["images"][3].update(file_name="missing.jpg"),
            r"images\[3\] \(missing.jpg\): no such file",
        ),
        (lambda d: d["images"][0].update(width=999), "the annotation says 999x48"),
    ],
)
def test_malformed_file_imports_nothing(
    db: Database,
    store: BlobStore,
    exported: Path,
    corrupt,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    doc = json.loads((exported / "annotations.json").read_text())
    corrupt(doc)
    bad = exported / "bad.json"
    bad.write_text(json.dumps(doc))
    before = _count_labels(db)
    keys_before = set(store.iter_keys())
    with pytest.raises(InvalidInput, match=message):
        import_coco(db, store, bad, exported / "images", "copy")
    assert _count_labels(db) == before
    assert set(store.iter_keys()) == keys_before
    with db.read() as s, pytest.raises(Exception, match="does not exist"):
        show_dataset(s, DatasetRef("copy"))
