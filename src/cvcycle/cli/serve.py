"""``cvcycle serve``: the KServe v2 / Triton server (HTTP, gRPC, metrics) over a model repository.

The command and its flags are ``cvcycle.serve.options.serve``, which ``python -m cvcycle.serve``
runs too.
"""

from __future__ import annotations

import typer

from cvcycle.cli.common import handle_errors
from cvcycle.serve.options import serve

serve_command = handle_errors(serve)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
