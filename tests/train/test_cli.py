"""``cvcycle train``, ``runs`` and ``model`` through Typer's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from cvcycle.cli import models as model_commands
from cvcycle.cli import train as train_commands
from cvcycle.data.synthetic import add_synthetic_clips
from cvcycle.data.versions import commit_version
from cvcycle.db import open_database
from cvcycle.home import init_home
from cvcycle.settings import get_settings
from cvcycle.store import open_store

from .conftest import TINY_SETS

app = typer.Typer()
train_commands.register(app)
model_commands.register(app)
runner = CliRunner()


def cv(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"cvcycle {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def cvj(*args: str) -> Any:
    return json.loads(cv(*args, "--json"))


def tiny() -> list[str]:
    return [arg for item in TINY_SETS for arg in ("--set", item)]


def test_train_runs_and_models_from_the_command_line(home: Path, tmp_path: Path) -> None:
    settings = get_settings()
    init_home(settings)
    db, store = open_database(settings), open_store(settings)
    add_synthetic_clips(db, store, "home", clips=3, lighting="day", seed=1)
    with db.write() as session:
        commit_version(session, "home", "day")
    config = tmp_path / "train.yaml"
    config.write_text("lr: 0.01\nseed: 3\n")

    first = cvj("train", "--dataset", "home@1", "--config", str(config), *tiny(), "--set", "lr=0.002")
    assert (first["model_version"], first["alias"], first["status"]) == (
        "detector@1",
        "candidate",
        "finished",
    )
    assert first["config_sources"]["lr"] == "set" and first["config_sources"]["seed"] == "file"
    assert any("lr=0.01" in note for note in first["notes"])
    assert "val_map50" in first["metrics"]

    plain = cv("train", "--dataset", "home@latest", "--from", "detector@1", *tiny())
    assert "detector@2 (alias candidate)" in plain and f"run {first['run_id'] + 1} finished" in plain

    runs = cvj("runs", "list")
    assert [r["model_versions"] for r in runs] == [["detector@2"], ["detector@1"]]
    assert runs[0]["parent_run_id"] == first["run_id"]
    shown = cvj("runs", "show", str(first["run_id"]))
    assert shown["config"]["lr"] == 0.002 and shown["seed"] == 3 and shown["status"] == "finished"
    assert "python" in shown["environment"]
    assert "lr" in cv("runs", "show", str(first["run_id"]))

    clone = cvj("runs", "clone", str(first["run_id"]), "--set", "lr=0.005")
    assert clone["model_version"] == "detector@3" and clone["config_sources"]["lr"] == "set"

    versions = cvj("model", "list")
    assert [(v["ref"], v["aliases"]) for v in versions] == [
        ("detector@3", ["candidate"]),
        ("detector@2", []),
        ("detector@1", []),
    ]
    moved = cvj("model", "alias", "detector@1", "production")
    assert moved == {
        "model": "detector",
        "alias": "production",
        "version": 1,
        "previous": None,
        "changed": True,
    }
    assert "already points" in cv("model", "alias", "detector:production", "production")
    assert "(was detector@1)" in cv("model", "alias", "detector@3", "production", "--reason", "better")
    lineage = cvj("model", "show", "detector:production")
    assert lineage["dataset"] == {"name": "home", "version": 1}
    assert [a["id"] for a in lineage["ancestors"]] == [first["run_id"]]
    assert "detector" in cvj("model", "adapters")
    listing = cv("model", "list")
    assert "candidate" in listing and "production" in listing and listing.count("detector") >= 3


def test_user_errors_exit_2_with_one_line_and_a_hint(home: Path) -> None:
    init_home(get_settings())
    output = cv("model", "alias", "detector@9", "production", code=2)
    assert "model 'detector' does not exist" in output and "hint:" in output
    output = cv("train", "--dataset", "home@1", "--set", "lrr=0.1", code=2)
    assert "unknown config key 'lrr'" in output and "did you mean 'lr'" in output
    assert "does not exist" in cv("train", "--dataset", "home@1", code=2)
    assert "run 7 does not exist" in cv("runs", "clone", "7", code=2)
    assert "invalid version" in cv("model", "show", "detector@x", code=2)
    assert cvj("runs", "list") == [] and cvj("model", "list") == []
