"""Versions: commit, log, diff, immutability of committed versions, optimistic locking, crashes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cvcycle.data.datasets import resolve_ref
from cvcycle.data.labels import BoxInput, add_boxes, current_label, delete_box, edit_box
from cvcycle.data.snapshot import show_dataset
from cvcycle.data.versions import (
    ClassChange,
    RowIds,
    commit_version,
    diff_versions,
    list_versions,
    working_copy_changes,
)
from cvcycle.db import Database
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.records import to_jsonable
from cvcycle.refs import DatasetRef, parse_dataset_ref


def _boxes(frame_ids: list[int], cls: str = "person") -> list[BoxInput]:
    return [BoxInput(frame_id=f, cls=cls, x=1, y=2, w=10, h=20) for f in frame_ids]


def test_commit_records_versions_and_leaves_them_immutable(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 4)
    with db.write() as s:
        keys = add_boxes(s, "home", _boxes(medium.frame_ids))
        v1 = commit_version(s, "home", "first")
    assert v1.version == 1
    assert v1.stats["totals"] == {
        "frames": 4,
        "tags": 0,
        "slices": 0,
        "labels": 4,
        "labels_per_class": {"person": 4},
        "segments": 0,
        "segments_per_class": {},
    }

    with db.write() as s:
        edit_box(s, "home", keys[0], 1, {"cls": "fallen_person", "w": 12})
        delete_box(s, "home", keys[1], 1)
        v2 = commit_version(s, "home", "second")
    assert v2.stats["totals"]["labels_per_class"] == {"fallen_person": 1, "person": 2}

    with db.read() as s:
        at1 = show_dataset(s, DatasetRef("home", 1))
        at2 = show_dataset(s, DatasetRef("home", 2))
        assert [v.version for v in list_versions(s, "home")] == [2, 1]
    assert at1.labels.per_class == {"person": 4}
    assert at2.labels.per_class == {"fallen_person": 1, "person": 2}


def test_diff_reports_added_removed_and_changed_with_ids(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    first = make_medium("home", 3)
    with db.write() as s:
        keys = add_boxes(s, "home", _boxes(first.frame_ids))
        commit_version(s, "home", "v1")
    second = make_medium("home", 2)
    with db.write() as s:
        add_boxes(s, "home", _boxes(second.frame_ids, "fallen_person"))
        edited = edit_box(s, "home", keys[0], 1, {"x": 3})
        delete_box(s, "home", keys[1], 1)
        commit_version(s, "home", "v2")
    with db.read() as s:
        d = diff_versions(s, "home", 1, 2)
        back = diff_versions(s, "home", 2, 1)
    assert d.frames.added == RowIds(count=2, ids=sorted(second.frame_ids))
    assert d.frames.removed.count == 0
    assert d.labels.added.count == 2
    assert d.labels.added.per_class == {"fallen_person": 2}
    assert d.labels.removed.count == 1
    assert d.labels.changed.count == 1
    assert d.labels.changed.items[0].key == keys[0]
    assert d.labels.changed.items[0].new_id == edited.id
    assert back.frames.removed.ids == sorted(second.frame_ids)
    assert back.labels.changed.items[0].old_id == edited.id
    assert to_jsonable(back)["from"] == 2 and to_jsonable(back)["to"] == 1


def test_a_diff_side_is_a_number_or_the_working_copy(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    make_medium("home", 2)
    with db.write() as s:
        commit_version(s, "home", "v1")
    added = make_medium("home", 1)
    with db.read() as s:
        diffs = [diff_versions(s, "home", old, new) for old, new in [(1, 2), ("1", "working"), (1, "wc")]]
        assert all(d == diffs[0] for d in diffs) and (diffs[0].old, diffs[0].new) == (1, 2)
        assert diffs[0].frames.added.ids == added.frame_ids
        with pytest.raises(InvalidInput, match="version 'x' is not a number"):
            diff_versions(s, "home", "x", "working")
        with pytest.raises(InvalidInput, match="cannot diff version 2 with itself"):
            diff_versions(s, "home", "working", 2)
        with pytest.raises(NotFound, match="version 3 of dataset 'home' does not exist"):
            diff_versions(s, "home", 1, 3)


def test_nothing_to_commit_is_refused(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    make_medium("home", 2)
    with db.write() as s:
        commit_version(s, "home", "v1")
    with pytest.raises(InvalidInput, match="nothing to commit"), db.write() as s:
        commit_version(s, "home", "again")


def test_edits_inside_one_working_copy_leave_no_trace(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 1)
    with db.write() as s:
        commit_version(s, "home", "frames")
        (key,) = add_boxes(s, "home", _boxes(medium.frame_ids))
        edit_box(s, "home", key, 1, {"x": 5})
        delete_box(s, "home", key, 2)
    with db.read() as s:
        change = working_copy_changes(s, "home")
    assert change.labels == ClassChange(added={}, removed={})
    with pytest.raises(InvalidInput, match="nothing to commit"), db.write() as s:
        commit_version(s, "home", "noop")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("home@0", InvalidInput),
        ("home@x", InvalidInput),
        ("bad name", InvalidInput),
        ("nope@1", NotFound),
        ("home@7", NotFound),
    ],
)
def test_bad_references_name_the_problem(db: Database, make_medium, text: str, error: type) -> None:  # type: ignore[no-untyped-def]
    make_medium("home", 1)
    with db.write() as s:
        commit_version(s, "home", "v1")
    with pytest.raises(error), db.read() as s:
        resolve_ref(s, parse_dataset_ref(text))


def test_stale_revision_gets_conflict_and_nothing_is_lost(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 1)
    with db.write() as s:
        (key,) = add_boxes(s, "home", _boxes(medium.frame_ids))
    with db.write() as s:
        edit_box(s, "home", key, 1, {"x": 4}, author="alice")
    with pytest.raises(Conflict, match="revision 2"), db.write() as s:
        edit_box(s, "home", key, 1, {"x": 7}, author="bob")
    with db.read() as s:
        label = current_label(s, "home", key)
    assert (label.x, label.rev, label.author) == (4, 2, "alice")
    with db.write() as s:  # bob reloads and saves again
        edit_box(s, "home", key, label.rev, {"y": 9}, author="bob")
    with db.read() as s:
        label = current_label(s, "home", key)
    assert (label.x, label.y, label.rev) == (4, 9, 3)


def test_two_concurrent_writers_one_wins_one_conflicts(db: Database, make_medium) -> None:  # type: ignore[no-untyped-def]
    medium = make_medium("home", 1)
    with db.write() as s:
        (key,) = add_boxes(s, "home", _boxes(medium.frame_ids))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def writer(name: str, x: float) -> None:
        barrier.wait()
        try:
            with db.write() as s:
                edit_box(s, "home", key, 1, {"x": x}, author=name)
            outcomes[name] = "saved"
        except Conflict:
            outcomes[name] = "conflict"

    threads = [threading.Thread(target=writer, args=(n, x)) for n, x in (("alice", 3.0), ("bob", 6.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["conflict", "saved"]
    winner = next(n for n, o in outcomes.items() if o == "saved")
    with db.read() as s:
        label = current_label(s, "home", key)
    assert label.author == winner and label.rev == 2
    assert label.x == {"alice": 3.0, "bob": 6.0}[winner]


CRASHING_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from cvcycle.data import versions
    from cvcycle.db import Database

    original = versions._record_version

    def record_then_die(*args, **kwargs):
        version = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies with the commit half done
        return version

    versions._record_version = record_then_die
    db = Database(sys.argv[1])
    with db.write() as session:
        versions.commit_version(session, "home", "doomed")
    """
)


def test_commit_killed_midway_changes_nothing_and_a_retry_succeeds(
    db: Database,
    db_url: str,
    make_medium,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    medium = make_medium("home", 3)
    with db.write() as s:
        add_boxes(s, "home", _boxes(medium.frame_ids))
        commit_version(s, "home", "v1")
    more = make_medium("home", 2)
    with db.write() as s:
        add_boxes(s, "home", _boxes(more.frame_ids, "fallen_person"))
    with db.read() as s:
        before = working_copy_changes(s, "home")
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_COMMIT)
    proc = subprocess.run(
        [sys.executable, str(script), db_url], capture_output=True, text=True, env=os.environ.copy()
    )
    assert proc.returncode == -9, proc.stderr

    with db.read() as s:
        assert [v.version for v in list_versions(s, "home")] == [1]
        assert working_copy_changes(s, "home") == before
        assert show_dataset(s, DatasetRef("home")).labels.per_class == {"fallen_person": 2, "person": 3}
    with db.write() as s:
        v2 = commit_version(s, "home", "retry")
    assert v2.version == 2
    with db.read() as s:
        assert show_dataset(s, DatasetRef("home", 2)).frames == 5
