"""Blob references, store verification and garbage collection, on a local store and on S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String

from cvcycle.data.blobs import (
    BLOB_KEY_COLUMNS,
    BLOB_KEY_DOCUMENTS,
    NOT_BLOB_KEYS,
    blob_users,
    collect_garbage,
    referenced_keys,
    verify_blobs,
)
from cvcycle.data.datasets import lock_dataset
from cvcycle.db import Database
from cvcycle.db.models import Base, Event, Frame, Media, ModelVersion, Run
from cvcycle.errors import InvalidInput
from cvcycle.store import BlobStore

from ..store.conftest import StoreEnv, make_env, s3_server  # noqa: F401 - s3_server is a fixture

DAY = 24 * 3600.0


def rel(key: str) -> str:
    return f"sha256/{key[:2]}/{key[2:4]}/{key}"


@pytest.fixture(params=["file", "s3"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEnv:
    return make_env(request.param, tmp_path, request)


@pytest.fixture
def store(env: StoreEnv) -> BlobStore:
    """The store every fixture here writes to (make_medium included)."""
    return env.store


class Refs:
    """One referenced blob per place a row can record one, and what each is."""

    def __init__(self, db: Database, store: BlobStore, make_medium: Any) -> None:
        medium = make_medium("home", 2)
        with db.read() as s:
            self.frames = [s.get(Frame, f) for f in medium.frame_ids]
            self.medium = s.get(Media, medium.media_id)
        self.snapshot = store.put_bytes(b"snapshot jpeg")
        self.checkpoint = store.put_bytes(b"checkpoint")
        self.onnx = store.put_bytes(b"onnx")
        self.plan = store.put_bytes(b"tensorrt plan")
        with db.write() as s:
            dataset = lock_dataset(s, "home", create=False)
            event = Event(
                source="cam-1",
                time=datetime.now(UTC),
                model_name="detector",
                model_version=1,
                detections=[],
                detection_count=0,
                snapshot_key=self.snapshot.key,
                snapshot_size=self.snapshot.size,
                width=64,
                height=48,
            )
            run = Run(
                adapter="detector",
                model_name="detector",
                config={},
                dataset_id=dataset.id,
                dataset_version=0,
                train_slice="train",
                val_slice="val",
                seed=0,
                checkpoint_key=self.checkpoint.key,
            )
            s.add_all([event, run])
            s.flush()
            s.add(
                ModelVersion(
                    name="detector",
                    version=2,
                    adapter="detector",
                    run_id=run.id,
                    artifacts={
                        "checkpoint": {"key": self.checkpoint.key, "size": self.checkpoint.size},
                        "onnx": {"key": self.onnx.key, "size": self.onnx.size},
                        "tensorrt": {"8.9": {"key": self.plan.key, "size": self.plan.size}},
                    },
                )
            )
            s.flush()
            self.event_id, self.run_id = event.id, run.id

    @property
    def keys(self) -> set[str]:
        blobs = [self.snapshot, self.checkpoint, self.onnx, self.plan]
        return {f.blob_key for f in self.frames} | {self.medium.blob_key} | {b.key for b in blobs}


@pytest.fixture
def refs(db: Database, store: BlobStore, make_medium: Any) -> Refs:
    return Refs(db, store, make_medium)


def age(env: StoreEnv, key: str, seconds: float) -> None:
    """Make a local blob look written ``seconds`` ago (object stores cannot be backdated)."""
    path = env.store.local_path(key)
    then = time.time() - seconds
    os.utime(path, (then, then))


def damage(env: StoreEnv, key: str) -> bytes:
    """Flip one byte of a stored blob behind the store's back: same size, other bytes."""
    data = bytearray(env.store.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    env.write_raw(rel(key), bytes(data))
    return bytes(data)


def test_every_digest_column_is_declared() -> None:
    """A model that gains a column holding a digest must say whether it references a blob."""
    declared = {c.key.property.columns[0] for c in BLOB_KEY_COLUMNS}
    declared |= {c.property.columns[0] for c in NOT_BLOB_KEYS}
    documents = {c.property.columns[0] for c in BLOB_KEY_DOCUMENTS}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, String):
                continue
            named_like = any(w in column.name for w in ("sha", "hash", "digest", "blob", "checkpoint"))
            if column.type.length == 64 or named_like:
                assert column in declared, (
                    f"{table.name}.{column.name}: a blob key? declare it in data/blobs.py"
                )
    assert documents == {ModelVersion.artifacts.property.columns[0]}


def test_referenced_keys_cover_every_place(db: Database, store: BlobStore, refs: Refs) -> None:
    stray = store.put_bytes(b"nobody's")
    with db.read() as s:
        assert referenced_keys(s) == refs.keys
        assert referenced_keys(s, among=[stray.key, refs.plan.key, refs.frames[0].blob_key]) == {
            refs.plan.key,
            refs.frames[0].blob_key,
        }
        assert referenced_keys(s, among=[]) == set()
        users = blob_users(s, [refs.checkpoint.key, refs.plan.key, refs.snapshot.key, stray.key])
    assert users[refs.checkpoint.key] == [f"checkpoint of run {refs.run_id}", "detector@2 checkpoint"]
    assert users[refs.plan.key] == ["detector@2 tensorrt.8.9"]
    assert users[refs.snapshot.key] == [f"snapshot of event {refs.event_id}"]
    assert users[stray.key] == []


def test_verify_passes_on_a_clean_store(db: Database, env: StoreEnv, refs: Refs) -> None:
    report = verify_blobs(db, env.store)
    assert report.ok and report.problems == ()
    assert report.checked == len(refs.keys)
    assert report.to_json()["ok"] is True


def test_verify_finds_damaged_and_missing_blobs(db: Database, env: StoreEnv, refs: Refs) -> None:
    frame = refs.frames[1]
    bad = hashlib.sha256(damage(env, frame.blob_key)).hexdigest()
    env.store.delete(refs.onnx.key)  # lost: a row still names it
    seen: list[tuple[str, int, int | None]] = []

    report = verify_blobs(db, env.store, progress=lambda *args: seen.append(args))

    assert not report.ok
    by_key = {p.key: p for p in report.problems}
    assert set(by_key) == {frame.blob_key, refs.onnx.key}
    corrupt, missing = by_key[frame.blob_key], by_key[refs.onnx.key]
    assert corrupt.problem == "corrupt" and bad in corrupt.detail
    assert corrupt.used_by == (f"frame {frame.id}",)
    assert missing.problem == "missing" and missing.used_by == ("detector@2 onnx",)
    assert report.checked == len(refs.keys) - 2
    assert seen[-1] == ("verifying blobs", len(refs.keys) - 1, len(refs.keys) - 1)
    assert report.to_json()["corrupt"] == 1 and report.to_json()["missing"] == 1

    only = verify_blobs(db, env.store, [refs.snapshot.key, refs.onnx.key])
    assert [(p.key, p.problem) for p in only.problems] == [(refs.onnx.key, "missing")]
    assert only.checked == 1
    with pytest.raises(InvalidInput, match="'nope'"):
        verify_blobs(db, env.store, ["nope"])


def test_gc_dry_run_lists_old_unreferenced_blobs_and_deletes_nothing(
    db: Database, env: StoreEnv, refs: Refs
) -> None:
    orphan = env.store.put_bytes(b"left by a killed import")
    later = time.time() + 2 * DAY  # every blob is two days old then

    report = collect_garbage(db, env.store, now=later)

    assert not report.deleted
    assert [(b.key, b.size) for b in report.blobs] == [(orphan.key, orphan.size)]
    assert report.count == 1 and report.bytes == orphan.size
    assert set(env.store.iter_keys()) == refs.keys | {orphan.key}
    assert report.to_json()["blobs"][0]["key"] == orphan.key


def test_gc_delete_removes_only_old_unreferenced_blobs(db: Database, env: StoreEnv, refs: Refs) -> None:
    orphan = env.store.put_bytes(b"left by a killed import")
    fresh = env.store.put_bytes(b"an import in flight")
    if env.remote:
        # Object stores cannot be backdated: measure from a day ahead with a grace under a day.
        now, grace = time.time() + DAY, DAY - 3600
        young_report = collect_garbage(db, env.store, grace_s=3 * DAY, delete=True)
        assert young_report.count == 0 and young_report.young == 2
        report = collect_garbage(db, env.store, grace_s=grace, delete=True, now=now)
        assert {b.key for b in report.blobs} == {orphan.key, fresh.key}
    else:
        age(env, orphan.key, 2 * DAY)
        for key in refs.keys:
            age(env, key, 2 * DAY)
        report = collect_garbage(db, env.store, delete=True)
        assert [b.key for b in report.blobs] == [orphan.key]
        assert report.young == 1 and report.young_bytes == fresh.size  # within the grace: kept
        assert env.store.exists(fresh.key)
    assert report.deleted
    assert not env.store.exists(orphan.key)
    assert refs.keys <= set(env.store.iter_keys())
    assert verify_blobs(db, env.store).ok


def test_gc_keeps_a_blob_an_import_puts_again(db: Database, env: StoreEnv, refs: Refs) -> None:
    if env.remote:
        pytest.skip("object stores cannot be backdated")
    orphan = env.store.put_bytes(b"left by a killed import")
    age(env, orphan.key, 2 * DAY)
    env.store.put_bytes(b"left by a killed import")  # the import runs again: its age restarts

    report = collect_garbage(db, env.store, delete=True)

    assert report.count == 0 and report.young == 1
    assert env.store.exists(orphan.key)


def test_gc_rejects_a_negative_grace(db: Database, env: StoreEnv) -> None:
    with pytest.raises(InvalidInput, match="grace"):
        collect_garbage(db, env.store, grace_s=-1)
