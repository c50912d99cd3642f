"""Slices: filters, stored slices resolved per version, stable splits per medium."""

from __future__ import annotations

import pytest

from cvcycle.data.datasets import resolve_ref
from cvcycle.data.labels import BoxInput, add_boxes, add_tag
from cvcycle.data.selection import resolve_selection
from cvcycle.data.slices import list_slices, parse_filter, save_slice
from cvcycle.data.snapshot import count_frames, show_dataset
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.refs import DatasetRef


def _count(db: Database, ref: DatasetRef, slice_text: str | None) -> int:
    with db.read() as s:
        return count_frames(s, resolve_selection(s, ref, slice_text))


def test_filters_over_attributes_source_tags_and_classes(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    day = make_medium("home", 4, source="cam-1", lighting="day")
    night = make_medium("home", 3, source="cam-3", lighting="night")
    make_medium("home", 2, source="cam-3", lighting="dim")
    with db.write() as s:
        add_tag(s, "home", "hard_negative", frame_ids=night.frame_ids[:2])
        add_boxes(s, "home", [BoxInput(frame_id=day.frame_ids[0], cls="person", x=0, y=0, w=5, h=5)])
    wc = DatasetRef("home")
    assert _count(db, wc, "lighting=night") == 3
    assert _count(db, wc, "lighting=night|dim") == 5
    assert _count(db, wc, "lighting!=night") == 6
    assert _count(db, wc, "source=cam-3") == 5
    assert _count(db, wc, "source=cam-3,lighting=dim") == 2
    assert _count(db, wc, "tag=hard_negative") == 2
    assert _count(db, wc, "class=person") == 1
    assert _count(db, wc, None) == 9


def test_medium_tag_selects_all_its_frames(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 4)
    make_medium("home", 2)
    with db.write() as s:
        add_tag(s, "home", "review", media_ids=[medium.media_id])
    assert _count(db, DatasetRef("home"), "tag=review") == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lighting", "is not key=value"),
        ("lighting=", "is not key=value"),
        ("split=validation", "split is one of"),
        ("a=b|", "empty value"),
    ],
)
def test_bad_filters_are_rejected_naming_the_clause(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_filter(text)


def test_stored_slice_is_versioned(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    make_medium("home", 3, lighting="night")
    make_medium("home", 2, lighting="day")
    with db.write() as s:
        save_slice(s, "home", "hard", filter="lighting=night")
        commit_version(s, "home", "v1")
    with db.write() as s:
        save_slice(s, "home", "hard", filter="lighting=day")
        commit_version(s, "home", "v2")
    assert _count(db, DatasetRef("home", 1), "hard") == 3
    assert _count(db, DatasetRef("home", 2), "hard") == 2
    with db.read() as s:
        names = [spec.name for spec in list_slices(s, resolve_ref(s, DatasetRef("home", 1)))]
    assert names == ["train", "val", "test", "all", "hard"]
    with pytest.raises(NotFound, match="slice 'nope'"):
        _count(db, DatasetRef("home", 1), "nope")


def test_list_slice_and_reserved_names(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 5)
    with db.write() as s:
        save_slice(s, "home", "picked", frame_ids=medium.frame_ids[1:3])
    assert _count(db, DatasetRef("home"), "picked") == 2
    with pytest.raises(InvalidInput, match="not allowed"), db.write() as s:
        save_slice(s, "home", "val", filter="lighting=day")


def test_splits_are_per_medium_and_fill_val_and_test_early(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    media = [make_medium("home", 3) for _ in range(7)]
    splits = [m.split for m in media]
    assert splits.count("val") >= 1 and splits.count("test") >= 1 and splits.count("train") >= 4
    with db.read() as s:
        info = show_dataset(s, DatasetRef("home"))
    assert sum(info.splits.values()) == 21
    for medium in media:  # every frame of a medium is in its medium's split
        assert _count(db, DatasetRef("home"), f"split={medium.split},media={medium.sha256}") == 3
    # the same media in a second dataset may get other splits, but keep theirs in the first
    again = make_medium("home", 3)
    assert [m.split for m in media] == splits
    assert again.split in ("train", "val", "test")
