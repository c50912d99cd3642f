"""What every command shares: opening the services, rendering JSON, errors as one line, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from cvcycle.db import Database, open_database
from cvcycle.errors import CvcycleError
from cvcycle.records import to_jsonable
from cvcycle.settings import get_settings
from cvcycle.store import BlobStore, open_store

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CvcycleError into one line on stderr (plus a hint) and exit code 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CvcycleError as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint: {escape(exc.hint)}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def database() -> Database:
    return open_database(get_settings())


def store() -> BlobStore:
    return open_store(get_settings())


def print_json(data: Any) -> None:
    """Print records (see :mod:`cvcycle.records`) or plain data as indented JSON."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")


@contextmanager
def file_progress(
    enabled: bool = True, *, in_bytes: bool = False, terminal: Console | None = None
) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A Rich progress bar fed by the (description, done, total) callbacks of long services.

    Counts items, or bytes with a transfer speed (``in_bytes``). It is drawn on stderr, and only
    when ``terminal`` (stdout by default) is a terminal.
    """
    if not enabled or not (terminal or console).is_terminal:
        yield None
        return
    counts: tuple[ProgressColumn, ...] = (
        (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(), TimeElapsedColumn())
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), *counts, console=err_console, transient=True
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(description: str, done: int, total: int | None) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], completed=done, total=total)

        yield update
