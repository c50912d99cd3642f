"""``python -m cvcycle.serve --repo DIR``: the server alone, for a serving box with no database or torch.

The flags are ``cvcycle serve``'s (``cvcycle.serve.options``); a user error is one ``error:`` line
(and a ``hint:``) on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from functools import wraps
from typing import Any

import typer

from cvcycle.errors import CvcycleError
from cvcycle.serve.options import serve

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
@wraps(serve)
def main(*args: Any, **kwargs: Any) -> None:
    try:
        serve(*args, **kwargs)
    except CvcycleError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app(prog_name="python -m cvcycle.serve")
