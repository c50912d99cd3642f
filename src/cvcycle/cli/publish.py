"""``cvcycle publish`` and ``cvcycle model export``: verified ONNX into a Triton-layout repository."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cvcycle.cli.common import JsonOption, console, database, err_console, handle_errors, print_json, store


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def publish(
        model_ref: str = typer.Argument(..., help="The model version: detector@3 or detector:production."),
        repo: Path = typer.Option(
            ..., "--repo", help="The model repository (Triton layout) to publish into."
        ),
        max_batch_size: int = typer.Option(
            16, "--max-batch-size", min=1, help="Largest batch a server accepts."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Publish a verified ONNX export as <repo>/<model>/<version>/model.onnx with its config.pbtxt."""
        from cvcycle.registry.publish import publish_model_version

        result = publish_model_version(database(), store(), model_ref, repo, max_batch_size=max_batch_size)
        if as_json:
            print_json(result)
        elif result.changed:
            console.print(f"published {result.ref} to {result.model_file}", highlight=False)
        else:
            console.print(f"{result.ref} is already published in {result.repository}", highlight=False)


def register_model_commands(model_app: typer.Typer) -> None:
    """Add ``model export`` to the ``model`` command group."""

    @model_app.command("export")
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
                f"frames of {report.dataset} slice {report.slice!r} (rtol {report.rtol:g}, "
                f"atol {report.atol:g}): {'passed' if result.passed else 'FAILED'}",
                highlight=False,
            )
        if not result.passed:
            if not as_json:
                for line in result.failures:
                    err_console.print(f"[red]verification failed:[/] {line}", highlight=False)
            raise typer.Exit(1)
