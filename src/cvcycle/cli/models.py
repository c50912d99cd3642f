"""``cvcycle model list|show|alias|adapters|export``: the model registry from the command line.

Registry modules are imported inside the commands, and ``model export`` imports torch: ``cvcycle
--help`` should not wait for them.
"""

from __future__ import annotations

import typer
from rich.table import Table

from cvcycle.cli.common import (
    JsonOption,
    console,
    database,
    err_console,
    handle_errors,
    plain,
    print_json,
    store,
)
from cvcycle.refs import format_ref


@handle_errors
def list_command(
    model: str | None = typer.Argument(
        None, help="NAME for its versions; NAME@N, NAME@latest or NAME:ALIAS for one.", metavar="[MODEL]"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Model versions, newest first, with their aliases."""
    from cvcycle.registry.versions import list_model_versions

    with database().read() as session:
        versions = list_model_versions(session, model)
    if as_json:
        print_json(versions)
        return
    table = Table("version", "aliases", "adapter", "run", "classes", "artifacts", "created")
    for v in versions:
        table.add_row(
            plain(v.ref),
            plain(", ".join(v.aliases) or "-"),
            plain(v.adapter),
            str(v.run_id or "-"),
            plain(", ".join(v.classes)),
            plain(", ".join(v.artifacts)),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@handle_errors
def show(
    model_ref: str = typer.Argument(..., help="detector@3, detector:production or detector (newest)."),
    as_json: bool = JsonOption,
) -> None:
    """A version's lineage: the run that trained it, the dataset version and slices, the parent runs."""
    from cvcycle.registry.versions import lineage

    with database().read() as session:
        data = lineage(session, model_ref)
    if as_json:
        print_json(data)
        return
    model = data.model
    console.print(
        plain(f"{model.ref}  aliases {', '.join(model.aliases) or '-'}  adapter {model.adapter}"),
        highlight=False,
    )
    run = data.run
    if run is None:
        console.print("no training run on record", highlight=False)
        return
    console.print(
        plain(f"run {run.id} ({run.status}) on {run.dataset}  train {run.train_slice}  val {run.val_slice}"),
        highlight=False,
    )
    for ancestor in data.ancestors:
        made = ", ".join(ancestor.model_versions) or "no version"
        console.print(plain(f"  parent run {ancestor.id} on {ancestor.dataset} -> {made}"), highlight=False)


@handle_errors
def alias(
    model_ref: str = typer.Argument(..., help="The version to point at: detector@3 (or detector:candidate)."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="The alias to move, e.g. production."),
    reason: str = typer.Option("", "--reason", help="Why, for the alias history."),
    as_json: bool = JsonOption,
) -> None:
    """Point an alias at a version (the move is recorded with its reason)."""
    from cvcycle.registry.versions import move_alias

    with database().write() as session:
        data = move_alias(session, model_ref, alias_name, reason)
    moved, pointed = format_ref(data.model, alias=data.alias), format_ref(data.model, data.version)
    if as_json:
        print_json(data)
    elif not data.changed:
        console.print(plain(f"{moved} already points at {pointed}"), highlight=False)
    else:
        before = format_ref(data.model, data.previous) if data.previous else "nothing"
        console.print(plain(f"{moved} -> {pointed} (was {before})"), highlight=False)


@handle_errors
def adapters(as_json: bool = JsonOption) -> None:
    """The model adapters `train` can use (built in, and from `cvcycle.adapters` entry points)."""
    from cvcycle.models.adapter import list_adapters

    names = list_adapters()
    if as_json:
        print_json(names)
    else:
        console.print("\n".join(names), highlight=False)


@handle_errors
def export(
    model_ref: str = typer.Argument(..., help="The model version: detector@3 or detector:candidate."),
    frames: int = typer.Option(
        32, "--frames", min=1, help="Validation frames to verify the export on against PyTorch."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export to ONNX and verify against PyTorch on validation frames; exit 1 if verification fails."""
    from cvcycle.export.service import export_model_version  # deferred: imports torch

    result = export_model_version(database(), store(), model_ref, frames)
    if as_json:
        print_json(result)
    else:
        report = result.verification
        table = Table("output", "max abs", "max rel", "p99 abs", "outside tolerance", "verdict")
        for out in report.outputs:
            table.add_row(
                out.name,
                f"{out.max_abs:.3g}",
                f"{out.max_rel:.3g}",
                f"{out.p99_abs:.3g}",
                out.problem or f"{out.mismatched} of {out.elements}",
                "[green]pass[/]" if out.passed else "[red]FAIL[/]",
            )
        console.print(table)
        console.print(
            f"{result.model}: ONNX {result.onnx.size:,} bytes, verified on {report.samples} "
            f"frames of {plain(report.dataset)} slice {plain(repr(report.slice))} (rtol {report.rtol:g}, "
            f"atol {report.atol:g}): {'passed' if result.passed else 'FAILED'}",
            highlight=False,
        )
    if not result.passed:
        if not as_json:
            for line in result.failures:
                err_console.print(f"[red]verification failed:[/] {plain(line)}", highlight=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True)
    group.command("list")(list_command)
    group.command()(show)
    group.command()(alias)
    group.command()(adapters)
    group.command()(export)
    app.add_typer(group, name="model", help="Model versions, aliases, lineage and adapters.")
