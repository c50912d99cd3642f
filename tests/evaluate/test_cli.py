"""``cvcycle evaluate`` and ``cvcycle gate`` through a Typer app built from ``register``: user errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cvcycle.cli.evaluate import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Two commands need a callback to stay subcommands."""

    return app


def run(*args: str, code: int) -> str:
    result = runner.invoke(_app(), list(args))
    assert result.exit_code == code, f"{args} -> {result.exit_code}\n{result.output}"
    # Rich wraps long lines (a long temporary path) at the terminal width: compare without breaks.
    return result.output.replace("\n", "")


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ('criteria:\n  - {metric: mAP, slice: old, rule: "new >= old"}\n', "unknown metric 'mAP'"),
        ('criteria:\n  - {metric: map, slice: night, rule: "new >= old"}\n', "unknown slice 'night'"),
        ('criteria:\n  - {metric: map, slice: old, rule: "new >= old -"}\n', "malformed rule"),
    ],
)
def test_gate_rejects_a_criteria_typo_before_touching_any_model(
    tmp_path: Path, criteria: str, message: str
) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(criteria)
    out = run(
        "gate", "detector:candidate", "--against", "detector:production", "--criteria", str(path), code=2
    )
    assert message in out
    assert "gate.yaml" in out
    assert "hint:" in out
    assert not (tmp_path / "gate-report.md").exists()


def test_gate_names_a_missing_criteria_file(tmp_path: Path) -> None:
    out = run(
        "gate", "detector:c", "--against", "detector:p", "--criteria", str(tmp_path / "nope.yaml"), code=2
    )
    assert "cannot read criteria file" in out


def test_evaluate_rejects_a_bad_dataset_reference_before_looking_for_the_model(home: Path) -> None:
    from cvcycle.cli.main import app

    assert runner.invoke(app, ["init"]).exit_code == 0
    out = run("evaluate", "nosuchmodel@1", "--dataset", "home@x", "--slice", "test", code=2)
    assert "invalid version 'x'" in out


def test_unknown_models_are_user_errors(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("cvcycle.registry.versions", reason="the model registry is not in this tree yet")
    from cvcycle.cli.main import app

    assert runner.invoke(app, ["init"]).exit_code == 0
    path = tmp_path / "gate.yaml"
    path.write_text('criteria:\n  - {metric: map50, slice: old, rule: "new >= old"}\n')
    out = run(
        "gate", "detector:candidate", "--against", "detector:production", "--criteria", str(path), code=2
    )
    assert "detector" in out
    out = run("evaluate", "nosuchmodel@1", "--dataset", "home@1", "--slice", "test", code=2)
    assert "nosuchmodel" in out
