"""``cvcycle demo``: the whole loop on a fresh home, stage by stage, with the figures at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cvcycle.cli.common import console, handle_errors
from cvcycle.demo.demo import DemoOptions, DemoReport, Stage, run_demo
from cvcycle.errors import InvalidInput
from cvcycle.settings import Settings, get_settings


def _print_stage(stage: Stage) -> None:
    console.print(f"[bold]{stage.seconds:7.2f}s[/]  {stage.kind:10}  {stage.name}", highlight=False)


@handle_errors
def demo(
    home: Path | None = typer.Option(
        None, "--home", help="A new directory for the demo (default <home>/demo)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json-out", help="Write stage timings, gate and rates here."
    ),
    epochs: int = typer.Option(
        DemoOptions.train_epochs, "--epochs", min=1, help="Training epochs of detector@1."
    ),
    finetune_epochs: int = typer.Option(
        DemoOptions.finetune_epochs, "--finetune-epochs", min=1, help="Epochs of detector@2 (from @1)."
    ),
    train_seconds: float | None = typer.Option(
        None, "--train-seconds", help="Cap on training time per model."
    ),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """Train, serve, collect operator feedback, retrain, gate, redeploy, and measure the change."""
    base = get_settings()
    target = (home or base.home / "demo").expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise InvalidInput(f"{target} is not empty", hint="give --home a new directory, or remove it")
    settings = Settings(home=target)
    report = run_demo(
        settings,
        DemoOptions(
            seed=seed, train_epochs=epochs, finetune_epochs=finetune_epochs, train_seconds=train_seconds
        ),
        on_stage=_print_stage,
    )
    print_report(report)
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2, default=str))
        console.print(f"written: {json_out}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_report(report: DemoReport) -> None:
    """The gate report, the deploy decision, the operators' figures before and after, the totals."""
    if report.gate:
        console.print()
        console.print(
            Path(report.models["gate_markdown"]).read_text(),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"\ndeployed detector@2: {'yes' if report.deployed else 'no (the gate failed)'}")
    # Measures down, models across: fits a narrow terminal or a log file.
    models = list(report.rates)
    labels = ["before" if i == 0 else "after" for i in range(len(models))]
    table = Table("operators' figures", *(f"{lab} ({m})" for lab, m in zip(labels, models, strict=True)))
    rows: list[tuple[str, str, Callable[[Any], str]]] = [
        ("events", "events", str),
        ("detections reviewed", "detections_reviewed", str),
        ("false detections", "false_detection", str),
        ("false rate", "false_rate", _pct),
        ("frames reviewed", "frames_reviewed", str),
        ("missed objects", "missed_detection", str),
        ("missed per frame", "missed_rate", _pct),
        ("share of objects missed", "missed_share", _pct),
    ]
    for label, key, show in rows:
        table.add_row(label, *(show(report.rates[m][key]) for m in models))
    console.print(table)
    totals = report.totals()
    console.print(
        f"total {totals['total']:.1f}s: training {totals['training']:.1f}s, "
        f"evaluation {totals['evaluation']:.1f}s, inference {totals['inference']:.1f}s, "
        f"platform {totals['platform']:.1f}s, "
        f"rendering the synthetic world {totals['simulation']:.1f}s",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
