"""The one writer of the Triton repository: publish and sync share its lock and staging.

Races are forced, not hoped for: a sync's progress callback stops it inside the model's lock until
the test lets it go, and a writer that finds the lock taken says so (a warning) before it blocks,
which is the point the test waits for. The publish racing the sync runs in another process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from cvcycle.db import Database
from cvcycle.errors import InvalidInput
from cvcycle.registry import sync as sync_module
from cvcycle.registry.layout import model_folder, plan_filename, plan_filenames
from cvcycle.registry.publish import repository_config, write_repository_version
from cvcycle.registry.sync import sync_alias
from cvcycle.serve.model_config import parse_model_config
from cvcycle.store import BlobStore

CVCYCLE = str(Path(sys.executable).with_name("cvcycle"))
WAITING = "waiting for another writer of"


def graph(version: int, padding: int = 16) -> bytes:
    """x FP32 (B, 2) -> y, the same graph for every version; the bytes differ by the doc string."""
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "pass",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
        doc_string=f"version {version} " + "." * padding,
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def register(db: Database, store: BlobStore, data: bytes, **artifacts: Any) -> str:
    """The next version of ``pass``, its ONNX export verified, the alias ``production`` on it; its digest."""
    from cvcycle.registry.versions import create_model_version, set_alias

    blob = store.put_bytes(data)
    with db.write() as session:
        onnx_artifact = {"key": blob.key, "size": blob.size}
        row = create_model_version(
            session, name="pass", adapter="detector", classes=["person"], config={},
            artifacts={"onnx": onnx_artifact, **artifacts},
        )  # fmt: skip
        row.verification = {
            "passed": True,
            "outputs": [{"name": "y", "passed": True}],
        }  # as an export records
        set_alias(session, "pass", "production", row.version)
    return blob.key


def everything(repo: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(repo)): p.read_bytes() if p.is_file() else None for p in sorted(repo.rglob("*"))
    }


class Waiting(logging.Handler):
    """Set when a writer finds the model's lock taken (it then blocks until the lock is free)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(WAITING):
            self.seen.set()


@pytest.fixture
def waiting() -> Iterator[Waiting]:
    handler = Waiting()
    logger = logging.getLogger("cvcycle.registry.layout")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


class Stopped:
    """A sync progress callback that stops the copy at its first call, inside the lock, until released."""

    def __init__(self) -> None:
        self.inside, self.release = threading.Event(), threading.Event()

    def __call__(self, description: str, done: int, total: int | None) -> None:
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(120)


def in_thread(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_publish_waits_for_a_sync_of_the_same_model_and_finds_its_version(
    db: Database, db_url: str, store: BlobStore, tmp_path: Path
) -> None:
    key = register(db, store, graph(1))
    repo = tmp_path / "repo"
    stopped = Stopped()
    syncing, outcome = in_thread(sync_alias, db, store, repo, "production", progress=stopped)
    publish = None
    try:
        assert stopped.inside.wait(120)  # the sync holds the lock, with version 1 staged but not copied
        env = {**os.environ, "CVCYCLE_HOME": str(tmp_path / "home"), "CVCYCLE_DB_URL": db_url}
        publish = subprocess.Popen(
            [CVCYCLE, "publish", "pass@1", "--repo", str(repo), "--json"],
            env={**env, "CVCYCLE_STORE_URL": store.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert publish.stderr is not None
        said = [publish.stderr.readline()]
        while said[-1] and WAITING not in said[-1]:  # up to the line it blocks after, or its end
            said.append(publish.stderr.readline())
        assert said[-1].startswith(f"{WAITING} {repo / 'pass'}"), "".join(said)
        assert publish.poll() is None  # it waits, having written nothing
        assert os.listdir(repo / "pass") == [".staging"]
    finally:
        stopped.release.set()
        syncing.join()
        if publish is not None:
            out, err = publish.communicate(timeout=120)
    assert "error" not in outcome, outcome
    (synced,) = outcome["result"].models
    assert synced.copied and synced.config_written
    assert publish is not None and publish.returncode == 0, err
    published = json.loads(out)
    assert published["changed"] is False  # the sync's version and config were in place when it ran

    # One version folder, whole, and a config both parsers read.
    assert sorted(os.listdir(repo / "pass")) == ["1", "config.pbtxt"]
    assert os.listdir(repo / "pass" / "1") == ["model.onnx"]
    assert hashlib.sha256((repo / "pass" / "1" / "model.onnx").read_bytes()).hexdigest() == key
    text = (repo / "pass" / "config.pbtxt").read_text()
    assert parse_model_config(text, prefer_tritonclient=False).name == "pass"
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.version_policy.latest.num_versions == 1 and config.parameters["classes"].string_value


def test_a_sync_waits_for_the_writer_holding_the_model(
    db: Database, store: BlobStore, tmp_path: Path, waiting: Waiting
) -> None:
    register(db, store, graph(1))
    repo = tmp_path / "repo"
    with model_folder(repo, "pass") as folder:  # as a publish holds it
        syncing, outcome = in_thread(sync_alias, db, store, repo, "production")
        assert waiting.seen.wait(120)
        assert syncing.is_alive() and os.listdir(folder.path) == []  # it waits, having written nothing
    syncing.join()
    assert "error" not in outcome, outcome
    assert outcome["result"].models[0].copied
    assert sorted(os.listdir(repo / "pass")) == ["1", "config.pbtxt"]


def test_a_writer_waiting_on_a_folder_its_creator_removes_creates_it_again(
    tmp_path: Path, waiting: Waiting
) -> None:
    repo = tmp_path / "repo"
    text = repository_config("pass", graph(1), ["person"], 4)

    def write_config() -> bool:
        with model_folder(repo, "pass") as folder:
            return folder.write_model_config(text)

    # This writer creates the folder, then fails: leaving, it removes the folder, still empty.
    with pytest.raises(InvalidInput, match="versions start at 1"), model_folder(repo, "pass") as folder:
        writer, outcome = in_thread(write_config)
        assert waiting.seen.wait(120)
        folder.version_dir(0)
    writer.join()
    assert outcome == {"result": True}
    assert everything(repo) == {"pass": None, "pass/config.pbtxt": text.encode()}


def test_a_copy_failing_midway_leaves_the_versions_and_config_and_the_next_sync_resumes(
    db: Database, store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    register(db, store, graph(1))
    sync_alias(db, store, repo, "production")
    before = everything(repo)
    v2 = graph(2, padding=4000)
    register(db, store, v2)
    # The store's bytes arrive a KiB at a time, and the copy fails once some are in the staged file.
    monkeypatch.setattr(sync_module, "CHUNK_SIZE", 1024)

    def disk_full(description: str, done: int, total: int | None) -> None:
        if done >= 2048:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        sync_alias(db, store, repo, "production", progress=disk_full)
    staged = repo / "pass" / ".staging" / "2" / "model.onnx.part"
    assert {k: v for k, v in everything(repo).items() if not k.startswith("pass/.staging")} == before
    assert staged.stat().st_size == 2048  # kept, for the next sync to resume

    (model,) = sync_alias(db, store, repo, "production").models
    assert model.copied and model.bytes_resumed == 2048 and model.bytes_copied == len(v2) - 2048
    assert (repo / "pass" / "2" / "model.onnx").read_bytes() == v2
    assert sorted(os.listdir(repo / "pass")) == ["1", "2", "config.pbtxt"]  # no server: 1 is kept


def test_a_publish_failing_before_it_writes_leaves_no_model_folder(tmp_path: Path) -> None:
    data = graph(1)
    with pytest.raises(InvalidInput, match="versions start at 1"):
        write_repository_version(tmp_path, "pass", 0, data, repository_config("pass", data, [], 4))
    assert os.listdir(tmp_path) == []


def test_write_model_config_replaces_the_file_whole_and_only_when_it_changes(tmp_path: Path) -> None:
    first = repository_config("pass", graph(1), ["person"], 4)
    second = repository_config("pass", graph(1), ["person", "dog"], 4)
    with model_folder(tmp_path, "pass") as folder:
        assert folder.write_model_config(first)
        mtime = folder.config_file.stat().st_mtime_ns
        assert not folder.write_model_config(first) and folder.config_file.stat().st_mtime_ns == mtime
        assert folder.write_model_config(second)
        assert folder.config_file.read_text() == second
    assert os.listdir(tmp_path / "pass") == ["config.pbtxt"]  # no temporaries left


def test_plan_files_are_named_by_a_valid_compute_capability(
    db: Database, store: BlobStore, tmp_path: Path
) -> None:
    assert plan_filenames(["8.6", "8.9"]) == {"8.6": "model_8.6.plan", "8.9": "model_8.9.plan"}
    with pytest.raises(InvalidInput, match="'8' is not a compute capability"):
        plan_filename("8")
    plan = store.put_bytes(b"an engine")
    register(db, store, graph(1), tensorrt={"8": {"key": plan.key, "size": plan.size}})
    with pytest.raises(
        InvalidInput, match="pass@1 records a TensorRT plan under '8', which is not a compute"
    ):
        sync_alias(db, store, tmp_path / "repo", "production")
    assert not (tmp_path / "repo" / "pass").exists()
