"""What every command shares: opening the services, rendering JSON, errors as one line, progress,
and :func:`plain`, the one way untrusted text reaches the terminal."""

from __future__ import annotations

import json
import re
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

# C0 and C1 control characters, DEL, and the Unicode controls that reorder or hide text (bidi
# embeddings, overrides and isolates): printed raw they move the cursor, clear the screen, set the
# title or make text read differently from what it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """``value`` as text safe to print with Rich: markup shown literally, control characters as escapes.

    Every value that comes from data (event sources, class names, comments, people's names,
    dataset, slice and file names, messages quoting them) goes through it on its way into a table
    cell or a printed line; ``--json`` output needs nothing (JSON escapes control characters).
    ``"[red]x[/red]\\x1b[2J"`` prints as ``[red]x[/red]\\x1b[2J``.
    """
    return escape(_UNSAFE.sub(_visible, str(value)))


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CvcycleError into one line on stderr (plus a hint) and exit code 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CvcycleError as exc:
            err_console.print(f"[bold red]error:[/] {plain(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint: {plain(exc.hint)}[/]", highlight=False, soft_wrap=True)
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
