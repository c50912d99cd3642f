"""The ``cvcycle`` Typer app: command groups are registered here and live in their own modules."""

from __future__ import annotations

import typer

from cvcycle.cli import dataset, evaluate, feedback, media, publish, serve, setup

app = typer.Typer(
    name="cvcycle",
    help="The life cycle of computer-vision models for video analytics, in one self-hosted system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
setup.register(app)
media.register(app)
feedback.register(app)
evaluate.register(app)
publish.register(app)
serve.register(app)
app.add_typer(dataset.app, name="dataset", help="Versions, diffs, slices and manifests of datasets.")
