"""``cvcycle publish``: a verified ONNX export into a Triton-layout model repository."""

from __future__ import annotations

from pathlib import Path

import typer

from cvcycle.cli.common import JsonOption, console, database, handle_errors, print_json, store


@handle_errors
def publish(
    model_ref: str = typer.Argument(..., help="The model version: detector@3 or detector:production."),
    repo: Path = typer.Option(..., "--repo", help="The model repository (Triton layout) to publish into."),
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1, help="Largest batch a server accepts."),
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


def register(app: typer.Typer) -> None:
    app.command()(publish)
