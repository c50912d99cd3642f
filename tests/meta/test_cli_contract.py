"""The command line's contract, checked on every command and group found by walking ``cvcycle``'s app.

* ``--help`` exits 0 with a usage line and a description;
* an unknown option exits 2;
* a command takes ``--json``, unless ``NO_JSON`` says why it prints no data;
* a user error (here: a home with no database; for ``serve`` a missing repository, for ``demo``
  a home that is not empty) exits 2 with one ``error:`` line on stderr, perhaps a ``hint:`` line,
  nothing on stdout and no traceback.

A new command is checked without being listed; it fails until it takes ``--json`` or is listed in
``NO_JSON``, and until it has a row in ``_user_error_args`` or ``NOT_RUN``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.settings import get_settings

runner = CliRunner()

# Commands that print no data, so take no --json, and why.
NO_JSON = {
    "serve": "runs the inference server until interrupted; it prints log lines",
    "up": "runs the web UI and the API until interrupted; it prints where they listen",
    "demo": "prints stages as they run; --json-out writes its figures as JSON",
}

# Commands not run with a user error (see ``_user_error_args``), and why.
NOT_RUN = {
    "init": "an empty home is what it initialises: it succeeds there",
    "up": "it initialises the home, then runs the web UI and the API until interrupted",
    "model adapters": "it reads no home: it lists the adapters installed here",
}


def _user_error_args(tmp: Path) -> dict[str, list[str]]:
    """Arguments that parse, for each command run in an empty home (``tmp`` has the files named)."""
    labels, events, criteria = str(tmp / "labels.json"), str(tmp / "events.jsonl"), str(tmp / "gate.yaml")
    return {
        "ingest": [labels, "--dataset", "home"],
        "synth": ["--dataset", "home", "--clips", "1"],
        "export": ["home@1", "--out", str(tmp / "out")],
        "train": ["--dataset", "home@1"],
        "evaluate": ["detector@1", "--dataset", "home@1", "--slice", "test"],
        "gate": ["detector:candidate", "--against", "detector:production", "--criteria", criteria],
        "publish": ["detector@1", "--repo", str(tmp / "repo")],
        "serve": ["--repo", str(tmp / "no-repository"), "--http-port", "0"],  # a missing repository
        "sync": ["--repo", str(tmp / "repo")],
        "report": ["1", "--type", "confirmed"],
        "stats": [],
        "demo": ["--home", str(tmp)],  # a directory that is not empty
        "store verify": [],
        "store gc": [],
        "import coco": [labels, "--images", str(tmp), "--dataset", "home"],
        "dataset commit": ["home", "-m", "first"],
        "dataset log": ["home"],
        "dataset show": ["home@1"],
        "dataset diff": ["home", "1"],
        "dataset slices": ["home"],
        "dataset slice": ["home", "night", "--filter", "lighting=night"],
        "dataset materialize": ["home@1"],
        "runs list": [],
        "runs show": ["1"],
        "runs clone": ["1"],
        "model list": [],
        "model show": ["detector@1"],
        "model alias": ["detector@1", "production"],
        "model export": ["detector@1"],
        "events push": [events],
        "events list": [],
        "review sample": ["--model", "detector"],
        "tasks list": [],
        "tasks done": ["1", "--labels", labels],
        "tasks reopen": ["1", "--operator", "ann"],
    }


Command = TyperCommand | TyperGroup


def _walk(command: Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Command]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            assert isinstance(sub, TyperCommand | TyperGroup)
            yield from _walk(sub, (*path, name))


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
TREE = dict(_walk(ROOT, ()))  # the app, its groups and their commands, by path
COMMANDS = {" ".join(path): command for path, command in TREE.items() if not isinstance(command, TyperGroup)}


def _name(path: tuple[str, ...]) -> str:
    return " ".join(path) or "cvcycle"


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """``serve`` configures logging; what it configures must not outlive the captured streams."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_the_walk_finds_every_command() -> None:
    assert len(COMMANDS) >= 38
    assert {"dataset diff", "model export", "serve", "stats", "tasks reopen"} <= set(COMMANDS)


@pytest.mark.parametrize("path", list(TREE), ids=_name)
def test_help_shows_a_usage_line_and_a_description(path: tuple[str, ...]) -> None:
    command = TREE[path]
    assert command.help, f"`{_name(path)}` has no description (a docstring or help=)"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # Rich wraps the text at the terminal width
    assert f"Usage: {' '.join(['cvcycle', *path])} " in output
    assert " ".join(command.help.splitlines()[0].split()) in output


@pytest.mark.parametrize("path", list(TREE), ids=_name)
def test_an_unknown_option_exits_2(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--no-such-option"])
    assert result.exit_code == 2, result.output
    assert "No such option: --no-such-option" in " ".join(result.output.split())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_that_prints_data_takes_json(name: str) -> None:
    options = {opt for param in COMMANDS[name].params for opt in param.opts}
    assert ("--json" in options) != (name in NO_JSON), (
        f"`cvcycle {name}` takes --json and is listed in NO_JSON"
        if name in NO_JSON
        else f"`cvcycle {name}` takes no --json: add it, or say in NO_JSON why it prints no data"
    )


def test_the_exceptions_name_real_commands(tmp_path: Path) -> None:
    run = set(_user_error_args(tmp_path))
    assert set(NO_JSON) <= set(COMMANDS) and set(NOT_RUN) <= set(COMMANDS)
    assert not run & set(NOT_RUN)
    assert run | set(NOT_RUN) == set(COMMANDS), "give each new command a row in _user_error_args or NOT_RUN"


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CVCYCLE_HOME", str(home))
    monkeypatch.delenv("CVCYCLE_DB_URL", raising=False)
    monkeypatch.delenv("CVCYCLE_STORE_URL", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.mark.parametrize("name", [name for name in COMMANDS if name not in NOT_RUN])
def test_a_user_error_is_one_line_and_exit_2(name: str, empty_home: Path, tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text("[]")
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "gate.yaml").write_text('criteria:\n  - {metric: map50, slice: old, rule: "new >= old"}\n')
    args = [*name.split(), *_user_error_args(tmp_path)[name]]
    if name not in NO_JSON:
        args.append("--json")  # an error never leaves half a document on stdout
    result = runner.invoke(app, args)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), result.stderr
    assert len(lines) == 1 or lines[1].startswith("hint: "), result.stderr
