"""File names read from imported files stay inside the folder given: the rule, and a COCO import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cvcycle.data.formats.paths import resolve_inside
from cvcycle.data.interchange import export_coco, import_coco
from cvcycle.data.labels import BoxInput, add_boxes
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import Frame, Label, Media
from cvcycle.errors import InvalidInput
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore

WHERE = "annotations.json: images[3].file_name"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a")
    (root / "sub" / "b.jpg").write_bytes(b"b")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return root


@pytest.mark.parametrize("name", ["a.jpg", "sub/b.jpg", "sub/../a.jpg", "./a.jpg", "missing.jpg"])
def test_names_inside_resolve(images: Path, name: str) -> None:
    assert resolve_inside(images, name, WHERE) == (images / name).resolve()


def test_an_absolute_name_inside_the_folder_resolves(images: Path) -> None:
    assert resolve_inside(images, str(images / "a.jpg"), WHERE) == (images / "a.jpg").resolve()


@pytest.mark.parametrize("name", ["../secret.txt", "../../etc/passwd", "sub/../../secret.txt", "/etc/passwd"])
def test_names_outside_are_rejected_naming_the_entry(images: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_inside(images, name, WHERE)
    assert str(info.value) == f"{WHERE} {name!r} points outside --images {images}"
    assert info.value.hint is not None and "--images" in info.value.hint


def test_a_symlink_out_of_the_folder_is_rejected(images: Path) -> None:
    os.symlink(images.parent / "secret.txt", images / "link.jpg")
    os.symlink(images.parent, images / "up")
    for name in ("link.jpg", "up/secret.txt"):
        with pytest.raises(InvalidInput, match="points outside --images"):
            resolve_inside(images, name, WHERE, option="--images")


def test_a_symlink_within_the_folder_resolves(images: Path) -> None:
    os.symlink(images / "sub" / "b.jpg", images / "alias.jpg")
    assert resolve_inside(images, "alias.jpg", WHERE) == (images / "sub" / "b.jpg").resolve()


def test_the_folder_given_may_itself_be_a_symlink(images: Path, tmp_path: Path) -> None:
    os.symlink(images, tmp_path / "linked")
    assert resolve_inside(tmp_path / "linked", "a.jpg", WHERE) == (images / "a.jpg").resolve()
    with pytest.raises(InvalidInput, match="points outside"):
        resolve_inside(tmp_path / "linked", "../secret.txt", WHERE)


def test_the_option_is_named(images: Path) -> None:
    with pytest.raises(InvalidInput, match="points outside --frames"):
        resolve_inside(images, "../x", "seq.txt: line 3", option="--frames")


def _state(db: Database) -> tuple[int, int, int]:
    with db.read() as s:
        return tuple(  # type: ignore[return-value]
            int(s.scalar(select(func.count()).select_from(table)) or 0) for table in (Media, Frame, Label)
        )


@pytest.mark.parametrize("outside", ["../outside.jpg", "ABSOLUTE", "LINK"])
def test_a_coco_import_naming_a_file_outside_imports_nothing(
    db: Database,
    store: BlobStore,
    make_medium,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    outside: str,
) -> None:
    medium = make_medium("home", 3)
    with db.write() as s:
        add_boxes(
            s, "home", [BoxInput(frame_id=f, cls="person", x=2, y=3, w=10, h=20) for f in medium.frame_ids]
        )
        commit_version(s, "home", "v1")
    out = tmp_path / "out"
    with db.read() as s:
        export_coco(s, store, DatasetRef("home", 1), None, out)
    import_coco(db, store, out / "annotations.json", out / "images", "copy")  # the previous state
    # A real, readable image of the right size outside the folder: only the path rule can stop it.
    doc = json.loads((out / "annotations.json").read_text())
    first = out / "images" / doc["images"][0]["file_name"]
    stolen = out / "outside.jpg"
    stolen.write_bytes(first.read_bytes())
    name = {"ABSOLUTE": str(stolen), "LINK": "link.jpg"}.get(outside, outside)
    if outside == "LINK":
        os.symlink(stolen, out / "images" / "link.jpg")
    doc["images"][2]["file_name"] = name
    bad = out / "bad.json"
    bad.write_text(json.dumps(doc))
    before, keys_before = _state(db), set(store.iter_keys())

    with pytest.raises(InvalidInput) as info:
        import_coco(db, store, bad, out / "images", "copy")

    assert (
        str(info.value) == f"bad.json: images[2].file_name {name!r} points outside --images {out / 'images'}"
    )
    assert _state(db) == before
    assert set(store.iter_keys()) == keys_before
