"""``cvcycle train`` and ``cvcycle runs list|show|clone``: training runs from the command line.

Domain modules are imported inside the commands: they pull in torch, and ``cvcycle --help`` should
not wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cvcycle.cli.common import JsonOption, console, database, err_console, handle_errors, print_json, store
from cvcycle.settings import get_settings

if TYPE_CHECKING:
    from cvcycle.models.adapter import TrainProgress
    from cvcycle.train.service import RunResult

SetOption = typer.Option(
    [], "--set", help="Override one config key, e.g. --set lr=0.005 (repeatable; highest precedence)."
)


@contextmanager
def training_progress(enabled: bool) -> Iterator[Callable[[TrainProgress], None] | None]:
    """A Rich bar over each epoch's steps, and one line of metrics per finished epoch (on stderr)."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=None)

        def update(event: TrainProgress) -> None:
            loss = event.metrics.get("loss")
            description = f"epoch {event.epoch}/{event.epochs}" + (
                f" loss {loss:.3f}" if loss is not None else ""
            )
            bar.update(task, description=description, completed=event.step, total=event.steps)
            if event.kind == "epoch":
                shown = "  ".join(f"{k} {v:.4g}" for k, v in event.metrics.items() if k != "epoch")
                bar.console.print(f"epoch {event.epoch}: {shown}", highlight=False)

        yield update


def _render(result: RunResult, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(
        f"run {result.run_id} finished: {result.ref} (alias {result.alias})"
        + (f", tracked as {result.tracker_run_id}" if result.tracker_run_id else ""),
        highlight=False,
    )
    shown = ("val_map50", "val_map", "val_loss", "train_loss", "best_epoch", "epochs", "steps", "seconds")
    console.print(
        "  ".join(f"{k} {result.metrics[k]:.4g}" for k in shown if k in result.metrics), highlight=False
    )


@handle_errors
def train(
    dataset: str = typer.Option(..., "--dataset", help="A committed dataset version: NAME@V or NAME@latest."),
    train_slice: str = typer.Option("train", "--train-slice", help="Slice to train on."),
    val_slice: str = typer.Option("val", "--val-slice", help="Slice to validate and pick the best epoch on."),
    config: Path | None = typer.Option(None, "--config", help="YAML config file (above the defaults)."),
    sets: list[str] = SetOption,
    from_model: str | None = typer.Option(
        None, "--from", help="Start from the config of the run behind a model version, e.g. detector@1."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Train the next version of a model; it gets the alias `candidate`.

    Config precedence, lowest to highest: defaults < --config FILE < --from's run config < --set.
    To fine-tune, start from a version's weights: --set init_from=detector@1.
    """
    from cvcycle.train.service import train_model

    with training_progress(not as_json) as progress:
        result = train_model(
            database(),
            store(),
            get_settings(),
            dataset=dataset,
            train_slice=train_slice,
            val_slice=val_slice,
            config_file=config,
            sets=sets,
            from_model=from_model,
            progress=progress,
        )
    _render(result, as_json)


@handle_errors
def list_command(
    model: str | None = typer.Option(
        None, "--model", help="NAME for its runs; NAME@N, NAME@latest or NAME:ALIAS for the run behind it."
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Most runs to show."),
    as_json: bool = JsonOption,
) -> None:
    """The newest training runs."""
    from cvcycle.train.service import list_runs

    with database().read() as session:
        runs = list_runs(session, model, limit)
    if as_json:
        print_json(runs)
        return
    table = Table("run", "status", "model", "data", "versions", "val mAP50", "parent", "created")
    for r in runs:
        score = r.metrics.get("val_map50")
        table.add_row(
            str(r.id),
            r.status,
            r.model,
            f"{r.dataset} [{r.train_slice} / {r.val_slice}]",
            ", ".join(r.model_versions) or "-",
            f"{score:.3f}" if isinstance(score, int | float) else "-",
            str(r.parent_run_id or "-"),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@handle_errors
def show(run_id: int = typer.Argument(..., help="Run id."), as_json: bool = JsonOption) -> None:
    """Everything a run recorded: config and where each value came from, data, code, metrics."""
    from cvcycle.train.service import show_run

    with database().read() as session:
        data = show_run(session, run_id, get_settings())
    if as_json:
        print_json(data)
        return
    console.print(
        f"run {data.id} {data.status}  model {data.model} -> {', '.join(data.model_versions) or '-'}",
        highlight=False,
    )
    console.print(f"data {data.dataset}  train {data.train_slice}  val {data.val_slice}", highlight=False)
    dirty = " (dirty)" if data.code_dirty else ""
    console.print(
        f"code {data.code_version or '-'}{dirty}  seed {data.seed}"
        f"  parent {data.parent_run_id or '-'}"
        f"  tracker {data.tracker_url or data.tracker_run_id or '-'}",
        highlight=False,
    )
    table = Table("key", "value", "from")
    for key, value in data.config.items():
        table.add_row(key, str(value), data.config_sources.get(key, "?"))
    console.print(table)
    if data.metrics:
        console.print("  ".join(f"{k} {_short(v)}" for k, v in data.metrics.items()), highlight=False)
    if data.error:
        console.print(f"[red]error:[/] {data.error}", highlight=False)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@handle_errors
def clone(
    run_id: int = typer.Argument(..., help="The run to repeat."),
    sets: list[str] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Train again with a run's exact config, dataset version and slices, changed only by --set."""
    from cvcycle.train.service import clone_run

    with training_progress(not as_json) as progress:
        result = clone_run(database(), store(), get_settings(), run_id, sets, progress=progress)
    _render(result, as_json)


def register(app: typer.Typer) -> None:
    app.command()(train)
    group = typer.Typer(no_args_is_help=True)
    group.command("list")(list_command)
    group.command()(show)
    group.command()(clone)
    app.add_typer(group, name="runs", help="Training runs: list, show, clone.")
