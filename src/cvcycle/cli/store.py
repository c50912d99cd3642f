"""``cvcycle store verify|gc``: re-hash the blob store, and collect blobs nothing references."""

from __future__ import annotations

import re

import typer
from rich.filesize import decimal

from cvcycle.cli.common import JsonOption, console, database, file_progress, handle_errors, print_json, store
from cvcycle.data.blobs import DEFAULT_GRACE_S, collect_garbage, verify_blobs
from cvcycle.errors import InvalidInput

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def _seconds(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d`` or a number of seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput(
            f"grace period {text!r} is not a duration", hint="write seconds, or e.g. 90s, 30m, 24h, 7d"
        )
    return float(match[1]) * _UNITS[match[2]]


@handle_errors
def verify(
    keys: list[str] = typer.Argument(None, help="Blob keys (sha256) to check; default: every blob."),
    as_json: bool = JsonOption,
) -> None:
    """Re-hash blobs and report damaged or missing ones by key (exit 1 if any).

    Without keys: every stored blob, and every blob a row references that the store lacks.
    """
    with file_progress(not as_json) as progress:
        report = verify_blobs(database(), store(), keys or None, progress)
    if as_json:
        print_json(report.to_json())
    else:
        for problem in report.problems:
            used = f" (used by {', '.join(problem.used_by[:3])}" if problem.used_by else ""
            more = len(problem.used_by) - 3
            used += (f" and {more} more)" if more > 0 else ")") if used else ""
            console.print(f"{problem.problem}: {problem.key}{used}", highlight=False, soft_wrap=True)
            console.print(f"  {problem.detail}", highlight=False, soft_wrap=True, style="dim")
        verdict = "all good" if report.ok else f"{len(report.problems)} bad"
        console.print(f"checked {report.checked} blobs ({decimal(report.bytes)}): {verdict}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@handle_errors
def gc(
    grace: str = typer.Option(
        f"{DEFAULT_GRACE_S / 3600:g}h",
        "--grace",
        help="Keep unreferenced blobs younger than this (90s, 30m, 24h, 7d): imports in flight own them.",
    ),
    delete: bool = typer.Option(False, "--delete", help="Delete them (default: a dry run that lists them)."),
    as_json: bool = JsonOption,
) -> None:
    """Find blobs no database row references, older than the grace period; --delete removes them."""
    grace_s = _seconds(grace)
    with file_progress(not as_json) as progress:
        report = collect_garbage(database(), store(), grace_s=grace_s, delete=delete, progress=progress)
    if as_json:
        print_json(report.to_json())
        return
    if not delete:
        for info in report.blobs:
            console.print(f"{info.key}  {decimal(info.size)}", highlight=False)
    verb = "deleted" if delete else "would delete"
    line = f"{verb} {report.count} unreferenced blobs ({decimal(report.bytes)}) older than {grace}"
    if report.young:
        line += f"; kept {report.young} younger ({decimal(report.young_bytes)})"
    if report.temporaries:
        line += f"; {verb} {report.temporaries} leftover temporaries"
    console.print(line, highlight=False)
    if not delete and report.count:
        console.print("run again with --delete to remove them", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True)
    group.command()(verify)
    group.command()(gc)
    app.add_typer(group, name="store", help="Check and clean the blob store: verify, gc.")
