"""``cvcycle sync``: a local model repository follows an alias, against a real ``cvcycle serve``.

The registry is real: a home with SQLite and a blob store, a committed dataset, two versions of the
built-in detector registered with ``create_model_version`` and exported (and verified) with
``export_model_version`` (and a second model, ``lobby``, without the alias), built once per module
and copied for each test. The two versions have different weights, so which one answered a request
is plain from its outputs. The server is ``cvcycle serve`` in a subprocess on a free port, in
explicit model control where it has it (so only sync's load request makes it serve a version),
talked to with the official ``tritonclient``. The S3 variant runs on moto's S3 server.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
import tritonclient.http as triton
import typer
from typer.testing import CliRunner

from cvcycle.db import Database
from cvcycle.errors import CorruptBlob, NotFound, ServerUnavailable
from cvcycle.registry.server_control import InferenceServerControl
from cvcycle.registry.sync import SyncReport, sync_alias, watch_alias
from cvcycle.settings import get_settings
from cvcycle.store import BlobStore

CLASSES = ["person", "fallen_person"]
INPUT_SIZE = (64, 96)
OUTPUTS = ("boxes", "scores", "classes")
CVCYCLE = str(Path(sys.executable).with_name("cvcycle"))


# -- the registry: built once, copied per test ------------------------------------------------------


def _add_medium(db: Database, store: BlobStore, n: int, frames: int = 4) -> None:
    from PIL import Image

    from cvcycle.data.ingest import record_media
    from cvcycle.db.models import Media

    blobs = []
    for i in range(frames):
        buffer = io.BytesIO()
        pixels = np.random.default_rng(n * 100 + i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="JPEG")
        blobs.append(store.put_bytes(buffer.getvalue()))
    media = Media(
        sha256=hashlib.sha256(f"medium-{n}".encode()).hexdigest(),
        kind="video",
        file_name=f"m{n}.mp4",
        blob_key=blobs[0].key,
        size=blobs[0].size,
        width=64,
        height=48,
        fps=10.0,
        frame_count=frames,
        duration_s=frames / 10,
        codec="h264",
        source="",
        attributes={},
    )
    rows = [
        {"index": i, "timestamp_s": i / 10, "blob_key": b.key, "blob_size": b.size, "width": 64, "height": 48}
        for i, b in enumerate(blobs)
    ]
    with db.write() as session:
        record_media(session, "home", media, rows)


def _register_detector(db: Database, store: BlobStore, run_id: int, seed: int, name: str = "detector") -> int:
    """A new version of ``name`` with freshly initialised weights (``seed``), exported and verified."""
    import torch

    from cvcycle.export.service import export_model_version
    from cvcycle.models.adapter import create_adapter
    from cvcycle.models.config import TrainConfig
    from cvcycle.registry.versions import create_model_version

    config = TrainConfig(input_size=INPUT_SIZE, width=8, max_detections=10)
    torch.manual_seed(seed)
    module = create_adapter("detector").build(config, CLASSES)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    checkpoint = store.put_bytes(buffer.getvalue())
    with db.write() as session:
        version = create_model_version(
            session,
            name=name,
            adapter="detector",
            classes=CLASSES,
            config=config.model_dump(mode="json"),
            artifacts={"checkpoint": {"key": checkpoint.key, "size": checkpoint.size}},
            run_id=run_id,
        ).version
    result = export_model_version(db, store, f"{name}@{version}", frames_for_verification=4)
    assert result.passed, result.failures
    return version


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """A home holding detector@1 (alias production) and detector@2, both exported and verified."""
    from cvcycle.data.versions import commit_version
    from cvcycle.db.models import Dataset, Run
    from cvcycle.models.config import TrainConfig
    from cvcycle.registry.versions import set_alias

    root = tmp_path_factory.mktemp("registry")
    shutil.copyfile(sqlite_template, root / "cvcycle.db")
    db = Database(f"sqlite:///{root / 'cvcycle.db'}")
    store = BlobStore.from_url((root / "store").as_uri())
    try:
        for n in range(3):
            _add_medium(db, store, n)
        with db.write() as session:
            commit_version(session, "home", "three media")
            dataset = session.query(Dataset).filter_by(name="home").one()
            run = Run(
                adapter="detector",
                model_name="detector",
                status="finished",
                config=TrainConfig(input_size=INPUT_SIZE, width=8).model_dump(mode="json"),
                dataset_id=dataset.id,
                dataset_version=1,
                train_slice="all",
                val_slice="all",
                seed=0,
            )
            session.add(run)
            session.flush()
            run_id = run.id
        assert _register_detector(db, store, run_id, seed=1) == 1
        assert _register_detector(db, store, run_id, seed=2) == 2
        assert _register_detector(db, store, run_id, seed=3, name="lobby") == 1  # no alias yet
        with db.write() as session:
            set_alias(session, "detector", "production", 1, reason="first deployment")
    finally:
        db.dispose()
    return root


@dataclass
class Home:
    root: Path
    db: Database
    store: BlobStore
    repo: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CVCYCLE_HOME": str(self.root),
            "CVCYCLE_DB_URL": f"sqlite:///{self.root / 'cvcycle.db'}",
            "CVCYCLE_STORE_URL": self.store.url,
        }

    def move_alias(self, version: int, model: str = "detector") -> None:
        from cvcycle.registry.versions import set_alias

        with self.db.write() as session:
            set_alias(session, model, "production", version)

    def onnx_artifact(self, version: int) -> dict[str, Any]:
        from cvcycle.registry.versions import resolve_model_ref

        with self.db.read() as session:
            return dict(resolve_model_ref(session, f"detector@{version}").artifacts["onnx"])

    def expected(self, version: int, images: np.ndarray) -> dict[str, np.ndarray]:
        """What the version answers, from ONNX Runtime in this process on the registry's own bytes."""
        artifact = self.onnx_artifact(version)
        session = ort.InferenceSession(
            self.store.get_bytes(artifact["key"]), providers=["CPUExecutionProvider"]
        )
        return dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": images}), strict=True))

    def sync(self, **kwargs: Any) -> SyncReport:
        return sync_alias(self.db, self.store, self.repo, "production", **kwargs)


@pytest.fixture
def home(registry_template: Path, tmp_path: Path) -> Iterator[Home]:
    """A copy of the registry for one test (this module's own ``home``, not the CLI one of conftest)."""
    root = tmp_path / "home"
    shutil.copytree(registry_template, root)
    db = Database(f"sqlite:///{root / 'cvcycle.db'}")
    yield Home(root, db, BlobStore.from_url((root / "store").as_uri()), tmp_path / "models")
    db.dispose()


# -- a real server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_usage() -> str:
    return subprocess.run([CVCYCLE, "serve", "--help"], capture_output=True, text=True, check=True).stdout


def _serve_flags(usage: str, mode: str) -> list[str]:
    """Flags for a server in ``explicit`` model control (only sync's load request makes it serve a
    version) or in ``poll`` mode (it may pick a new version up before sync asks), gRPC and metrics
    off. A server without model control modes polls: then the load API is absent and sync waits."""
    if "--model-control-mode" not in usage:
        return ["--poll", "0.1"]
    off = ["--grpc-port", "-1", "--metrics-port", "-1"]
    if mode == "explicit":
        return ["--model-control-mode", "explicit", *off]
    return ["--model-control-mode", "poll", "--poll", "0.1", *off]


class ServerProcess:
    """``cvcycle serve`` over the repository, in a subprocess, on a free port."""

    def __init__(self, repo: Path, log: Path, mode_flags: list[str]) -> None:
        self.port = _free_port()
        repo.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [CVCYCLE, "serve", "--repo", str(repo), "--http-port", str(self.port), *mode_flags],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = triton.InferenceServerClient(url=self.address)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.client.is_server_ready():
                    break
            except Exception:  # noqa: BLE001 - connection refused until it listens
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cvcycle serve did not start: {log.read_text()}")
            time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def infer(
        self, images: np.ndarray, client: triton.InferenceServerClient | None = None
    ) -> tuple[str, Any]:
        """(the version that answered, its outputs) for a request to the model, not to a version."""
        tensor = triton.InferInput("images", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images, binary_data=True)
        outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]
        result = (client or self.client).infer("detector", [tensor], outputs=outputs)
        return str(result.get_response()["model_version"]), {name: result.as_numpy(name) for name in OUTPUTS}

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def serve_usage() -> str:
    return _serve_usage()


@pytest.fixture
def server(
    home: Home, tmp_path: Path, serve_usage: str, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """The server in explicit model control, or in the mode a test parametrises it with."""
    flags = _serve_flags(serve_usage, getattr(request, "param", "explicit"))
    process = ServerProcess(home.repo, tmp_path / "serve.log", flags)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, *INPUT_SIZE), dtype=np.float32)


def answers(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return all(np.allclose(outputs[name], expected[name], atol=1e-4) for name in OUTPUTS)


def visible(repo: Path) -> dict[str, bytes | None]:
    """Everything in the repository, hidden staging included."""
    return {
        str(p.relative_to(repo)): p.read_bytes() if p.is_file() else None for p in sorted(repo.rglob("*"))
    }


def served_state(repo: Path) -> dict[str, bytes]:
    """What a server reads: configs and files under numeric version folders."""
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and (p.name == "config.pbtxt" or p.relative_to(repo).parts[1].isdigit())
    }


# -- tests ----------------------------------------------------------------------------------------


def test_sync_copies_verifies_and_the_server_serves_the_version_and_a_rerun_does_nothing(
    home: Home, server: ServerProcess, images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = home.sync(server=server.url)
    (model,) = report.models
    artifact = home.onnx_artifact(1)
    assert (model.model, model.version, model.copied, model.config_written, model.loaded) == (
        "detector",
        1,
        True,
        True,
        True,
    )
    assert model.bytes_copied == artifact["size"] and model.bytes_resumed == 0
    onnx_file = home.repo / "detector" / "1" / "model.onnx"
    assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() == artifact["key"]
    assert sorted(os.listdir(home.repo / "detector")) == ["1", "config.pbtxt"]  # no staging left
    config = (home.repo / "detector" / "config.pbtxt").read_text()
    assert "version_policy: { latest { num_versions: 1 } }" in config and "fallen_person" in config

    version, outputs = server.infer(images)
    assert version == "1" and answers(outputs, home.expected(1, images))
    assert not answers(outputs, home.expected(2, images))  # the two versions can be told apart

    before = {p: p.stat().st_mtime_ns for p in home.repo.rglob("*")}
    again = home.sync(server=server.url)
    assert not again.changed and again.models[0].loaded is False
    assert {p: p.stat().st_mtime_ns for p in home.repo.rglob("*")} == before

    # The command says so too.
    from cvcycle.cli.sync import register

    for name, value in home.env().items():
        if name.startswith("CVCYCLE_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so that Typer keeps `sync` as a sub-command
    try:
        result = CliRunner().invoke(app, ["sync", "--repo", str(home.repo), "--server", server.url])
        assert result.exit_code == 0, result.output
        assert "nothing to do" in " ".join(result.output.split())
        result = CliRunner().invoke(app, ["sync", "--repo", str(home.repo), "--alias", "staging", "--json"])
        assert result.exit_code == 2
        assert "no model has the alias 'staging'" in " ".join(result.output.split())
    finally:
        get_settings.cache_clear()


def test_a_checksum_mismatch_aborts_and_leaves_the_repository_as_it_was(
    home: Home, server: ServerProcess, images: np.ndarray
) -> None:
    home.sync(server=server.url)
    before = visible(home.repo)
    home.move_alias(2)
    artifact = home.onnx_artifact(2)
    blob = Path(home.store.local_path(artifact["key"]))
    damaged = bytearray(blob.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, other bytes: only the digest can tell
    blob.chmod(0o644)
    blob.write_bytes(bytes(damaged))
    bad_digest = hashlib.sha256(damaged).hexdigest()

    with pytest.raises(CorruptBlob) as info:
        home.sync(server=server.url)
    message = str(info.value)
    assert "model.onnx of detector@2" in message and artifact["key"] in message and bad_digest in message
    assert info.value.hint
    assert visible(home.repo) == before
    version, outputs = server.infer(images)
    assert version == "1" and answers(outputs, home.expected(1, images))


@pytest.mark.parametrize("server", ["explicit", "poll"], indirect=True)
def test_a_swap_under_load_drops_no_request(home: Home, server: ServerProcess, images: np.ndarray) -> None:
    home.sync(server=server.url)
    expected = {"1": home.expected(1, images), "2": home.expected(2, images)}
    seen: list[str] = []
    failures: list[BaseException] = []
    wrong: list[str] = []
    synced = threading.Event()
    stop = threading.Event()

    def client_loop() -> None:
        client = triton.InferenceServerClient(url=server.address)
        after_sync = 0
        try:
            while not stop.is_set() and after_sync < 20:
                try:
                    version, outputs = server.infer(images, client)
                except Exception as exc:  # noqa: BLE001 - every failure is recorded, none may happen
                    failures.append(exc)
                    continue
                if version not in expected or not answers(outputs, expected[version]):
                    wrong.append(version)
                seen.append(version)
                if synced.is_set() and version == "2":
                    after_sync += 1
        finally:
            client.close()

    loop = threading.Thread(target=client_loop)
    loop.start()
    try:
        while len(seen) < 20 and loop.is_alive():  # the loop is under way before the swap
            time.sleep(0.01)
        home.move_alias(2)
        report = home.sync(server=server.url)
        synced.set()
        loop.join(timeout=120)
    finally:
        stop.set()
        loop.join()
    assert not failures, failures[:3]
    assert not wrong
    assert seen[0] == "1" and seen[-1] == "2"
    switch = seen.index("2")
    assert set(seen[:switch]) == {"1"} and set(seen[switch:]) == {"2"}  # one switch, no flapping
    (model,) = report.models
    assert model.copied and model.loaded and model.removed == [1]
    assert sorted(os.listdir(home.repo / "detector")) == ["2", "config.pbtxt"]


SYNC_STOPPING_HALFWAY = textwrap.dedent(
    """
    import sys, threading
    from cvcycle.db import Database
    from cvcycle.registry import sync
    from cvcycle.store import BlobStore

    db_url, store_url, repo, server, half = sys.argv[1:6]
    sync.CHUNK_SIZE = int(half)  # the copy goes in halves, so that it can stop between them

    def stop_halfway(description, done, total):
        if 0 < done < total:
            print(f"paused copying {description} after {done} bytes", file=sys.stderr, flush=True)
            threading.Event().wait()  # until killed

    sync.sync_alias(
        Database(db_url), BlobStore.from_url(store_url), repo, "production", server=server,
        progress=stop_halfway,
    )
    """
)


def test_sync_killed_during_a_copy_leaves_the_old_version_serving_and_a_rerun_completes(
    home: Home, server: ServerProcess, images: np.ndarray
) -> None:
    home.sync(server=server.url)
    home.move_alias(2)
    served_before = served_state(home.repo)
    size = home.onnx_artifact(2)["size"]
    half = size // 2
    # The sync's progress callback stops the copy for good once half of model.onnx is in the file.
    env = home.env()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SYNC_STOPPING_HALFWAY,
            env["CVCYCLE_DB_URL"],
            env["CVCYCLE_STORE_URL"],
            str(home.repo),
            server.url,
            str(half),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "paused copying detector@2 model.onnx" in line, line + process.stderr.read()
        part = home.repo / "detector" / ".staging" / "2" / "model.onnx.part"
        assert part.stat().st_size == half
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    assert not (home.repo / "detector" / "2").exists()
    assert served_state(home.repo) == served_before
    version, outputs = server.infer(images)
    assert version == "1" and answers(outputs, home.expected(1, images))

    report = home.sync(server=server.url)
    (model,) = report.models
    assert model.copied and model.bytes_resumed == half and model.bytes_copied == size - half  # no byte twice
    assert sorted(os.listdir(home.repo / "detector")) == ["2", "config.pbtxt"]
    version, outputs = server.infer(images)
    assert version == "2" and answers(outputs, home.expected(2, images))


def test_a_rollback_removes_the_newer_folder_so_the_older_version_is_served(
    home: Home, server: ServerProcess, images: np.ndarray
) -> None:
    home.move_alias(2)
    home.sync(server=server.url)
    home.move_alias(1)
    (model,) = home.sync(server=server.url).models
    assert model.copied and model.removed == [2]
    assert sorted(os.listdir(home.repo / "detector")) == ["1", "config.pbtxt"]
    version, outputs = server.infer(images)
    assert version == "1" and answers(outputs, home.expected(1, images))


def test_without_a_server_superseded_versions_are_kept(home: Home) -> None:
    home.sync()
    home.move_alias(2)
    progress: list[tuple[str, int, int | None]] = []
    (model,) = home.sync(progress=lambda *update: progress.append(update)).models
    assert model.copied and model.loaded is None and model.kept == [1] and not model.removed
    assert sorted(os.listdir(home.repo / "detector")) == ["1", "2", "config.pbtxt"]
    size = home.onnx_artifact(2)["size"]
    assert progress[0] == ("detector@2 model.onnx", 0, size) and progress[-1] == (
        "detector@2 model.onnx",
        size,
        size,
    )


def test_staging_left_for_a_version_the_alias_no_longer_points_at_is_removed(home: Home) -> None:
    home.sync()
    staged = home.repo / "detector" / ".staging" / "2"  # a sync of version 2, killed midway
    staged.mkdir(parents=True)
    (staged / "model.onnx.part").write_bytes(b"the first bytes")
    report = home.sync()  # the alias is back on version 1
    assert not report.changed
    assert sorted(os.listdir(home.repo / "detector")) == ["1", "config.pbtxt"]


def test_watch_follows_alias_and_config_changes(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cvcycle.registry.sync")
    reports: queue.Queue[SyncReport] = queue.Queue()
    stop = threading.Event()
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            watch_alias(
                home.db, home.store, home.repo, "production", interval=0.2, stop=stop, on_pass=reports.put
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    def next_change() -> SyncReport:
        while True:
            report = reports.get(timeout=120)
            if report.changed:
                return report

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        first = next_change().models[0]
        assert first.version == 1 and first.copied
        home.move_alias(2)
        moved = next_change().models[0]
        assert moved.version == 2 and moved.copied and not moved.config_written  # same graph, same config
        config = home.repo / "detector" / "config.pbtxt"
        text = config.read_text()
        edited = config.with_name("edited.tmp")  # edited by hand, saved the way editors save
        edited.write_text(text.replace("max_batch_size: 16", "max_batch_size: 2"))
        edited.replace(config)
        restored = next_change().models[0]
        assert restored.config_written and not restored.copied
        assert config.read_text() == text
    finally:
        stop.set()
        thread.join()
    assert not errors
    logged = [r.getMessage() for r in caplog.records if r.name == "cvcycle.registry.sync"]
    assert any(m.startswith(f"copied detector@2 into {home.repo / 'detector' / '2'}") for m in logged)
    assert logged.count(f"wrote {config}") == 2  # the first pass, and the repair


def test_watch_logs_a_failed_pass_and_recovers(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cvcycle.registry.sync")
    reports: queue.Queue[SyncReport] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_alias,
        args=(home.db, home.store, home.repo, "production"),
        kwargs={"interval": 0.2, "stop": stop, "on_pass": reports.put},
    )
    blob = Path(home.store.local_path(home.onnx_artifact(2)["key"]))
    good = blob.read_bytes()
    thread.start()
    try:
        assert reports.get(timeout=120).models[0].copied  # version 1 is in place
        blob.chmod(0o644)
        blob.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # the store's copy of version 2 is damaged
        home.move_alias(2)

        def failures() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]

        while not failures():
            assert thread.is_alive()
            time.sleep(0.05)
        assert "checksum mismatch for model.onnx of detector@2" in failures()[0]
        assert not (home.repo / "detector" / "2").exists()
        blob.write_bytes(good)  # restored from a backup: the next pass goes through
        while not (report := reports.get(timeout=120)).changed:
            pass
        assert report.models[0].version == 2 and report.models[0].copied
    finally:
        stop.set()
        thread.join()


def test_the_watch_command_reports_each_change_until_interrupted(home: Home) -> None:
    process = subprocess.Popen(
        [CVCYCLE, "sync", "--repo", str(home.repo), "--watch", "0.2", "--json"],
        env=home.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline() or "null")  # one line per pass that changed something
        assert first is not None, process.communicate(timeout=60)
        assert first["models"][0]["ref"] == "detector@1" and first["models"][0]["copied"]
        home.move_alias(2)
        second = json.loads(process.stdout.readline() or "null")
        assert second["models"][0]["ref"] == "detector@2" and second["models"][0]["copied"]
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=60)
        assert process.returncode == 0, log
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    logged = [line.split(" INFO ", 1)[-1] for line in log.splitlines()]  # one plain line per change
    assert any(line.startswith(f"copied detector@2 into {home.repo / 'detector' / '2'}") for line in logged)
    assert (home.repo / "detector" / "2" / "model.onnx").is_file()


def test_every_model_with_the_alias_or_only_those_named(home: Home) -> None:
    home.move_alias(1, model="lobby")
    report = home.sync()
    assert [(m.model, m.version, m.copied) for m in report.models] == [
        ("detector", 1, True),
        ("lobby", 1, True),
    ]
    assert sorted(os.listdir(home.repo)) == ["detector", "lobby"]
    assert 'name: "lobby"' in (home.repo / "lobby" / "config.pbtxt").read_text()
    home.move_alias(2)
    (only,) = home.sync(models=["lobby"]).models
    assert only.model == "lobby" and not only.changed
    assert sorted(os.listdir(home.repo / "detector")) == ["1", "config.pbtxt"]  # not named: left alone


def test_the_server_s_own_reasons_reach_the_user(home: Home, server: ServerProcess) -> None:
    home.sync(server=server.url)
    with InferenceServerControl(server.url) as control:
        with pytest.raises(
            ServerUnavailable, match=re.escape(f"the server at {server.url} could not load ghost: ")
        ):
            control.load("ghost", timeout=30)
        with pytest.raises(
            ServerUnavailable, match=r"did not make detector version 7 ready within 0\.2 s: \S"
        ):
            control.wait_until_ready("detector", 7, timeout=0.2)
    with pytest.raises(
        ServerUnavailable, match=re.escape("cannot reach the inference server at http://127.0.0.1:1")
    ):
        home.sync(server="127.0.0.1:1")


def test_models_named_must_exist_and_have_the_alias(home: Home) -> None:
    with pytest.raises(NotFound, match="model 'other' does not exist") as info:
        sync_alias(home.db, home.store, home.repo, "production", models=["detector", "other"])
    assert "known models: detector" in (info.value.hint or "")
    with pytest.raises(NotFound, match="detector:staging does not exist: no alias 'staging'"):
        sync_alias(home.db, home.store, home.repo, "staging", models=["detector"])
    assert not home.repo.exists()
    assert (
        json.loads(json.dumps(home.sync(models=["detector"]).to_json()))["models"][0]["ref"] == "detector@1"
    )


def test_tensorrt_plans_travel_with_the_version(home: Home) -> None:
    from cvcycle.db.models import ModelVersion

    plan = home.store.put_bytes(b"a TensorRT engine for compute capability 8.6")
    with home.db.write() as session:  # what a TensorRT export records beside the ONNX export
        row = session.query(ModelVersion).filter_by(name="detector", version=1).one()
        row.artifacts = {**row.artifacts, "tensorrt": {"8.6": {"key": plan.key, "size": plan.size}}}
    (model,) = home.sync().models
    assert model.bytes_copied == home.onnx_artifact(1)["size"] + plan.size
    version_dir = home.repo / "detector" / "1"
    assert sorted(os.listdir(version_dir)) == ["model.onnx", "model_8.6.plan"]
    assert (version_dir / "model_8.6.plan").read_bytes() == b"a TensorRT engine for compute capability 8.6"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server", reason="the S3 variant needs moto[server]")
    boto3 = pytest.importorskip("boto3", reason="the S3 variant needs boto3")
    pytest.importorskip("s3fs", reason="the S3 variant needs s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="models")
        yield endpoint
    finally:
        server.stop()


def test_sync_from_s3_resumes_a_partial_copy(home: Home, s3_endpoint: str, tmp_path: Path) -> None:
    s3 = BlobStore.from_url(
        "s3://models/cvcycle",
        cache_dir=tmp_path / "cache",
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    )
    for version in (1, 2):  # the blobs a team keeps in S3
        s3.put_bytes(home.store.get_bytes(home.onnx_artifact(version)["key"]))
    (first,) = sync_alias(home.db, s3, home.repo, "production").models
    assert first.copied and first.bytes_copied == home.onnx_artifact(1)["size"]

    # What a sync killed halfway through fetching version 2 leaves (the kill test makes it for real).
    home.move_alias(2)
    artifact = home.onnx_artifact(2)
    data = home.store.get_bytes(artifact["key"])
    staged = home.repo / "detector" / ".staging" / "2"
    staged.mkdir(parents=True)
    (staged / "model.onnx.part").write_bytes(data[: len(data) // 3])
    (second,) = sync_alias(home.db, s3, home.repo, "production").models
    assert second.bytes_resumed == len(data) // 3 and second.bytes_copied == len(data) - len(data) // 3
    assert (home.repo / "detector" / "2" / "model.onnx").read_bytes() == data
    assert not staged.parent.exists()


def test_sync_against_a_restricted_server_needs_its_key(home: Home, tmp_path: Path, serve_usage: str) -> None:
    flags = [*_serve_flags(serve_usage, "explicit"), "--http-restricted-api", "model-repository:admin-key=k1"]
    process = ServerProcess(home.repo, tmp_path / "serve.log", flags)
    try:
        with pytest.raises(ServerUnavailable, match=r"no key sent.*expecting header 'admin-key'"):
            home.sync(server=process.url)
        with pytest.raises(ServerUnavailable, match="header 'admin-key' is wrong"):
            home.sync(server=process.url, server_key=("admin-key", "nope"))
        home.sync(server=process.url, server_key=("admin-key", "k1"))
        assert process.client.is_model_ready("detector", "1")
    finally:
        process.stop()
