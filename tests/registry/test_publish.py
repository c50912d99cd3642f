"""Publishing into a Triton-layout repository: layout, idempotence, atomicity under real failures, refusal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import typer
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from cvcycle.db import Database
from cvcycle.errors import Conflict
from cvcycle.export.onnx import verify_onnx
from cvcycle.records import to_jsonable
from cvcycle.registry.publish import write_repository_version
from cvcycle.registry.triton import io_from_onnx, model_config
from cvcycle.store import BlobStore


def scale_model(factor: float, weights: int = 4) -> bytes:
    """x FP32 (B, 4) -> y = x * factor; ``weights`` pads the file with an unused initializer."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "factor"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            helper.make_tensor("factor", TensorProto.FLOAT, [], [factor]),
            helper.make_tensor("padding", TensorProto.FLOAT, [weights], np.zeros(weights, np.float32)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def config_for(data: bytes, name: str = "scale") -> str:
    io = io_from_onnx(data)
    return model_config(name, max_batch_size=8, inputs=io.inputs, outputs=io.outputs)


def served_state(repo: Path) -> dict[str, bytes]:
    """What a server reads: every config.pbtxt and file under numeric version folders (<model>/<n>/)."""
    state = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if path.is_file() and (path.name == "config.pbtxt" or rel.parts[1].isdigit()):
            state[str(rel)] = path.read_bytes()
    return state


def everything(repo: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(repo)): p.read_bytes() if p.is_file() else None for p in sorted(repo.rglob("*"))
    }


def test_layout_is_tritons_and_republishing_changes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    v1 = scale_model(1.0)
    first = write_repository_version(repo, "scale", 1, v1, config_for(v1))
    assert first.changed and first.model_file == repo / "scale" / "1" / "model.onnx"
    assert first.model_file.read_bytes() == v1
    config = text_format.Parse((repo / "scale" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "scale" and config.version_policy.latest.num_versions == 1

    before = {p: p.stat().st_mtime_ns for p in repo.rglob("*")}
    again = write_repository_version(repo, "scale", 1, v1, config_for(v1))
    assert not again.changed
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*")} == before

    v2 = scale_model(2.0)
    write_repository_version(repo, "scale", 2, v2, config_for(v2))
    assert (repo / "scale" / "1" / "model.onnx").read_bytes() == v1  # older versions stay
    assert (repo / "scale" / "2" / "model.onnx").read_bytes() == v2
    assert sorted(p.name for p in (repo / "scale").iterdir()) == ["1", "2", "config.pbtxt"]  # no lock file


def test_a_version_folder_with_other_content_is_a_conflict(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    v1 = scale_model(1.0)
    write_repository_version(repo, "scale", 1, v1, config_for(v1))
    before = everything(repo)
    with pytest.raises(Conflict, match="already exists with other content"):
        write_repository_version(repo, "scale", 1, scale_model(5.0), config_for(v1))
    assert everything(repo) == before


PUBLISH_UNDER_A_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from cvcycle.registry.publish import write_repository_version

    repo, data_path, config_path, killed = sys.argv[1:5]
    data, config = Path(data_path).read_bytes(), Path(config_path).read_text()
    # Python ignores SIGXFSZ, so an oversized write fails with EFBIG; the default action kills.
    if killed == "1":
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    # Files may not grow past 64 KiB: the config fits, the model does not.
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
    try:
        write_repository_version(Path(repo), "scale", 2, data, config)
    except OSError as exc:
        print(f"publish failed: {exc}")
        sys.exit(3)
    """
)


@pytest.mark.parametrize("killed", [False, True])
def test_a_publish_that_fails_while_staging_leaves_the_repository_serving_as_before(
    tmp_path: Path, killed: bool
) -> None:
    repo = tmp_path / "repo"
    v1 = scale_model(1.0)
    write_repository_version(repo, "scale", 1, v1, config_for(v1))
    before_served, before_all = served_state(repo), everything(repo)

    v2 = scale_model(2.0, weights=100_000)  # 400 KB: staging it runs into the file size limit
    (tmp_path / "v2.onnx").write_bytes(v2)
    config = config_for(v2).replace("num_versions: 1", "num_versions: 2")
    (tmp_path / "v2.pbtxt").write_text(config)
    result = subprocess.run(
        [sys.executable, "-c", PUBLISH_UNDER_A_FILE_SIZE_LIMIT, str(repo), str(tmp_path / "v2.onnx"),
         str(tmp_path / "v2.pbtxt"), "1" if killed else "0"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if killed:
        # SIGXFSZ killed the process in the middle of writing the staged model file.
        assert result.returncode == -signal.SIGXFSZ, result.stderr
        assert served_state(repo) == before_served
        assert os.listdir(repo / "scale" / ".staging") == ["2"]
    else:
        assert result.returncode == 3 and "File too large" in result.stdout, result.stdout + result.stderr
        assert everything(repo) == before_all  # not even a staging folder is left

    # The next publish clears what a killed one left, and succeeds.
    write_repository_version(repo, "scale", 2, v2, config)
    assert not (repo / "scale" / ".staging").exists()
    assert (repo / "scale" / "2" / "model.onnx").read_bytes() == v2
    assert (repo / "scale" / "1" / "model.onnx").read_bytes() == v1


# -- publish_model_version: the registry's side -----------------------------------------------------


class Scale(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def verification(graph_factor: float, module_factor: float) -> dict[str, Any]:
    """A real report: the module and the graph agree when their factors do."""
    batches = [(torch.rand(3, 4),)]
    return to_jsonable(verify_onnx(Scale(module_factor), scale_model(graph_factor), batches))


VERIFIED = verification(1.0, 1.0)
FAILED = verification(2.0, 2.5)  # the graph computes x * 2, PyTorch x * 2.5


def add_version(
    db: Database, store: BlobStore, version: int, data: bytes | None, verification: dict[str, Any] | None
) -> None:
    from cvcycle.db.models import ModelVersion

    artifacts = {}
    if data is not None:
        blob = store.put_bytes(data)
        artifacts["onnx"] = {"key": blob.key, "size": blob.size}
    with db.write() as session:
        session.add(
            ModelVersion(
                name="scale",
                version=version,
                adapter="detector",
                classes=["person", "fallen_person"],
                config={},
                artifacts=artifacts,
                evaluations={},
                verification=verification,
            )
        )


@pytest.fixture
def registry() -> None:
    pytest.importorskip(
        "cvcycle.registry.versions", reason="the registry's resolve_model_ref is not there yet"
    )


def test_publish_model_version_writes_the_layout_with_the_classes(
    registry: None, db: Database, store: BlobStore, tmp_path: Path
) -> None:
    from cvcycle.registry.publish import publish_model_version

    data = scale_model(1.0)
    add_version(db, store, 1, data, VERIFIED)
    result = publish_model_version(db, store, "scale@1", tmp_path / "repo")
    assert result.ref == "scale@1" and result.changed
    assert result.model_file.read_bytes() == data
    config = text_format.Parse(result.config_file.read_text(), model_config_pb2.ModelConfig())
    assert config.max_batch_size == 16 and [i.name for i in config.input] == ["x"]
    assert json.loads(config.parameters["classes"].string_value) == ["person", "fallen_person"]
    assert not publish_model_version(db, store, "scale@1", tmp_path / "repo").changed


@pytest.mark.parametrize(
    ("data", "verification", "message"),
    [
        (None, None, "scale@2 has no ONNX export"),
        (b"onnx", None, "its ONNX export was never verified"),
        (b"onnx", FAILED, "failed verification against PyTorch on output y"),
    ],
)
def test_publish_refuses_an_unverified_version_and_leaves_the_repository_untouched(
    registry: None,
    db: Database,
    store: BlobStore,
    tmp_path: Path,
    data: bytes | None,
    verification: dict[str, Any] | None,
    message: str,
) -> None:
    from cvcycle.errors import InvalidInput
    from cvcycle.registry.publish import publish_model_version

    repo = tmp_path / "repo"
    add_version(db, store, 1, scale_model(1.0), VERIFIED)
    publish_model_version(db, store, "scale@1", repo)
    before = everything(repo)
    add_version(db, store, 2, scale_model(2.0) if data else None, verification)
    with pytest.raises(InvalidInput, match=message) as info:
        publish_model_version(db, store, "scale@2", repo)
    assert info.value.hint
    assert everything(repo) == before


def test_the_publish_command(
    registry: None, db: Database, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvcycle.cli.publish import register
    from cvcycle.store import open_store

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so that Typer keeps `publish` as a sub-command
    runner = CliRunner()
    store = open_store()
    add_version(db, store, 1, scale_model(1.0), VERIFIED)
    add_version(db, store, 2, scale_model(2.0), FAILED)
    repo = tmp_path / "repo"

    result = runner.invoke(app, ["publish", "scale@1", "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model_file"] == str(repo / "scale" / "1" / "model.onnx")
    result = runner.invoke(app, ["publish", "scale@1", "--repo", str(repo)])
    assert result.exit_code == 0 and "already published" in " ".join(result.output.split())

    result = runner.invoke(app, ["publish", "scale@2", "--repo", str(repo)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "failed verification against PyTorch on output y" in output
    assert not (repo / "scale" / "2").exists()
    assert os.listdir(repo) == ["scale"]
