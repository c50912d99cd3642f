"""Every command that takes a model reference accepts its four forms, resolved through the registry.

``detector@1``, ``detector@latest``, ``detector:production`` and ``detector`` on the sample home
(``fill_sample_home``): detector@1 is ``production`` and emitted the events, detector@2 is the
newest. A command that names one version resolves ``detector`` to the newest; a filter by model
(``--model``, ``model list``) keeps every version for ``detector``. The sample versions carry no
weights, so the commands that load or export them (evaluate, gate, model export, publish, train
from a version) stop there, with an error that names the version the reference resolved to: that
is what they are checked for, in seconds. An unknown or malformed reference is exit 2 and one line
saying what is wrong, for every command.

``sync`` is not here: it follows an alias (``--alias``) for model names (``--model NAME``).
The resolution itself runs on SQLite and PostgreSQL in tests/registry/test_versions.py; this
module checks the commands on one SQLite home, filled once.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.db import open_database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.home import init_home
from cvcycle.refs import format_ref
from cvcycle.settings import Settings, get_settings
from cvcycle.store import open_store

runner = CliRunner()

CRITERIA = 'criteria:\n  - {metric: map50, slice: old, rule: "new >= old - 0.01"}\n'


@dataclass(frozen=True)
class Named:
    """What a reference names in the sample home."""

    version: str  # the one version, where a command takes one
    kept: list[str]  # the versions a filter by model keeps, newest first

    @property
    def emitted(self) -> list[str]:
        """The kept versions that emitted events (only detector@1 did)."""
        return [v for v in self.kept if v == "detector@1"]


FORMS = {
    "detector@1": Named("detector@1", ["detector@1"]),
    "detector@latest": Named("detector@2", ["detector@2"]),
    "detector:production": Named("detector@1", ["detector@1"]),
    "detector": Named("detector@2", ["detector@2", "detector@1"]),
}


def _json(out: str) -> Any:
    return json.loads(out)


def _says(text: str) -> Callable[[str, Named], bool]:
    """The output says ``text``, with {version} the version the reference names."""
    return lambda out, named: text.format(version=named.version) in out


# (command line with {ref} for the reference, exit code, what the output must show)
COMMANDS: list[tuple[str, int, Callable[[str, Named], bool]]] = [
    ("model show {ref} --json", 0, lambda out, n: _json(out)["model"]["ref"] == n.version),
    ("model list {ref} --json", 0, lambda out, n: [v["ref"] for v in _json(out)] == n.kept),
    ("model alias {ref} staging --json", 0, lambda out, n: f"detector@{_json(out)['version']}" == n.version),
    (
        "runs list --model {ref} --json",
        0,
        lambda out, n: [r["model_versions"] for r in _json(out)] == [[v] for v in n.kept],
    ),
    (
        "events list --model {ref} --limit 100 --json",
        0,
        lambda out, n: [e["model"] for e in _json(out)] == n.emitted * 12,
    ),
    (
        "stats --model {ref} --by model_version --json",
        0,
        lambda out, n: [format_ref(r["model_name"], r["model_version"]) for r in _json(out)] == n.emitted,
    ),
    # Four empty images and three forms that keep detector@1: one each.
    (
        "review sample --model {ref} --limit 1 --json",
        0,
        lambda out, n: [p["model"] for p in _json(out)] == n.emitted,
    ),
    ("evaluate {ref} --dataset home@1 --slice all", 2, _says("{version} has no checkpoint artifact")),
    (
        "gate {ref} --against detector:production --criteria {criteria} --out {out}",
        2,
        _says("{version} has no checkpoint artifact"),
    ),
    # The candidate is loaded first: past resolving --against, it stops at the candidate's weights.
    (
        "gate detector:candidate --against {ref} --criteria {criteria} --out {out}",
        2,
        _says("detector@2 has no checkpoint artifact"),
    ),
    ("model export {ref}", 2, _says("no frames to verify {version}'s export on")),
    ("publish {ref} --repo {out}", 2, _says("{version} has no ONNX export")),
    (
        "train --dataset home@1 --set init_from={ref} --set width=8",
        2,
        _says("cannot start from the weights of {version}"),
    ),
    # The sample runs record a config key that is not a training setting (the parent config is read);
    # a working copy is never trained on, so this stops before any training in any case.
    (
        "train --dataset home --from {ref}",
        2,
        lambda out, n: "in the parent config" in out or "names the working copy" in out,
    ),
]

IDS = [line.format(ref="REF", criteria="C", out="O") for line, _, _ in COMMANDS]

# (a reference that names nothing, or nothing valid; what every command says about it)
BAD_REFS = [
    ("detector:retired", "no alias 'retired'"),
    ("ghost@latest", "model 'ghost' does not exist"),
    ("detector@x", "invalid version 'x'"),
]


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("refs") / "home"
    settings = Settings(home=home, db_url=None, store_url=None)
    init_home(settings)
    db = open_database(settings)
    fill_sample_home(db, open_store(settings))
    db.dispose()
    (home / "criteria.yaml").write_text(CRITERIA)
    return home


@pytest.fixture
def filled(sample_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CVCYCLE_HOME", str(sample_home))
    for name in ("CVCYCLE_DB_URL", "CVCYCLE_STORE_URL", "CVCYCLE_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield sample_home
    get_settings.cache_clear()


def cv(home: Path, line: str, ref: str) -> tuple[int, str, str]:
    """Run a command line; its exit code, its output (stdout) and everything it printed."""
    words = line.format(ref=ref, criteria=home / "criteria.yaml", out=home / "out")
    result = runner.invoke(app, shlex.split(words))
    return result.exit_code, result.stdout, result.output


@pytest.mark.parametrize("ref", list(FORMS))
@pytest.mark.parametrize(("line", "code", "shows"), COMMANDS, ids=IDS)
def test_commands_take_every_form_of_a_model_reference(
    filled: Path, line: str, code: int, shows: Callable[[str, Named], bool], ref: str
) -> None:
    exit_code, out, printed = cv(filled, line, ref)
    assert exit_code == code, f"-> {exit_code}\n{printed}"
    assert shows(out if code == 0 else printed, FORMS[ref]), printed


@pytest.mark.parametrize(("ref", "says"), BAD_REFS)
@pytest.mark.parametrize("line", [c[0] for c in COMMANDS], ids=IDS)
def test_an_unknown_or_malformed_reference_is_exit_2_with_the_reason(
    filled: Path, line: str, ref: str, says: str
) -> None:
    exit_code, _, printed = cv(filled, line, ref)
    assert exit_code == 2 and says in printed, printed
