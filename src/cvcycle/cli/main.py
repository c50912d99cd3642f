"""The ``cvcycle`` Typer app: every command module's ``register`` adds its commands and groups here."""

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
# `cvcycle --help` lists the commands in this order, then the groups in this order.
setup.register(app)
store.register(app)
media.register(app)
dataset.register(app)
train.register(app)
models.register(app)
evaluate.register(app)
publish.register(app)
serve.register(app)
sync.register(app)
feedback.register(app)
demo.register(app)
up.register(app)
