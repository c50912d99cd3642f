"""``cvcycle init``: create the home directory, the database schema and the blob store."""

from __future__ import annotations

import typer

from cvcycle.cli.common import JsonOption, console, handle_errors, print_json
from cvcycle.home import init_home
from cvcycle.settings import get_settings


@handle_errors
def init(as_json: bool = JsonOption) -> None:
    """Create (or migrate) the home, the metadata database and the blob store. Safe to run again."""
    result = init_home(get_settings())
    if as_json:
        print_json(result)
        return
    console.print(f"home      {result.home}")
    console.print(f"database  {result.database}  (schema {result.schema})")
    console.print(f"store     {result.store}")
    console.print(f"tracking  {result.tracking}")


def register(app: typer.Typer) -> None:
    app.command()(init)
