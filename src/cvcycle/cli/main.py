"""The ``cvcycle`` Typer app: command groups are registered here and live in their own modules."""

from __future__ import annotations

import typer

from cvcycle.cli import (
    dataset,
    demo,
    evaluate,
    feedback,
    media,
    models,
    publish,
    serve,
    setup,
    store,
    sync,
    train,
    up,
)

app = typer.Typer(
    name="cvcycle",
    help="The life cycle of computer-vision models for video analytics, in one self-hosted system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
setup.register(app)
app.add_typer(store.app, name="store", help="Check and clean the blob store: verify, gc.")
media.register(app)
app.add_typer(dataset.app, name="dataset", help="Versions, diffs, slices and manifests of datasets.")
train.register(app)
models.register(app)
publish.register_model_commands(models.model_app)
evaluate.register(app)
publish.register(app)
serve.register(app)
sync.register(app)
feedback.register(app)
demo.register(app)
up.register(app)
app.add_typer(store.app, name="store", help="Check and clean the blob store: verify, gc.")
