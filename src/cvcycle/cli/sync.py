"""``cvcycle sync``: a serving box's model repository follows an alias of the registry."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer
from rich.logging import RichHandler

from cvcycle.cli.common import console, database, err_console, file_progress, handle_errors, print_json, store
from cvcycle.refs import format_ref
from cvcycle.settings import get_settings


@handle_errors
def sync(
    alias: str = typer.Option("production", "--alias", help="The alias whose versions the repository holds."),
    repo: Path = typer.Option(
        ..., "--repo", help="The local model repository (Triton layout) to keep in step."
    ),
    models: list[str] = typer.Option(
        [], "--model", help="Only this model (repeat for several); default: every model with the alias."
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        help="The inference server to load into, e.g. http://127.0.0.1:8000 (ours or Triton).",
    ),
    server_key: str | None = typer.Option(
        None,
        "--server-key",
        help="The key of a server that restricts model control (Triton's --http-restricted-api); "
        "default: the one cvcycle up wrote to <home>/inference-server.key, if any.",
    ),
    server_key_header: str = typer.Option(
        "admin-key", "--server-key-header", help="The header that carries --server-key."
    ),
    watch: float | None = typer.Option(
        None, "--watch", min=0.01, help="Keep following the alias, checking every this many seconds."
    ),
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1, help="Largest batch a server accepts."),
    load_timeout: float = typer.Option(
        120.0, "--load-timeout", min=0.1, help="Seconds to wait for the server to serve a new version."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the result as JSON (with --watch: one line per pass that changed something).",
    ),
) -> None:
    """Copy the versions behind an alias into a repository, verified, and have the server load them.

    Versions the alias has left are removed once the server serves the new one (kept without --server).
    A second run does nothing; a run killed midway is resumed by the next one.
    """
    from cvcycle.registry.sync import SyncReport, sync_alias, watch_alias

    if server and server_key is None:
        from cvcycle.cli.up import server_key_file

        key_file = server_key_file(get_settings().home)
        server_key = key_file.read_text().strip() if key_file.is_file() else None
    options: dict[str, Any] = {
        "models": models,
        "server": server,
        "server_key": (server_key_header, server_key) if server_key else None,
        "max_batch_size": max_batch_size,
        "load_timeout": load_timeout,
    }
    with file_progress(not as_json, in_bytes=True, terminal=err_console) as progress:
        if watch is None:
            report = sync_alias(database(), store(), repo, alias, progress=progress, **options)
            if as_json:
                print_json(report.to_json())
                return
            for line in report.changes():
                console.print(line, highlight=False, soft_wrap=True)
            for model in report.models:
                if model.kept:
                    kept = ", ".join(str(v) for v in model.kept)
                    console.print(
                        f"kept {model.model} version {kept} beside {model.version}: "
                        "no --server to confirm the switch",
                        highlight=False,
                    )
            if not report.changed:
                served = ", ".join(format_ref(m.model, m.version) for m in report.models)
                console.print(f"nothing to do: {repo} already holds {served}", highlight=False)
            return
        _log_changes()
        which = ", ".join(models) if models else "every model"
        logging.getLogger("cvcycle.registry.sync").info(
            "following %s of %s in %s every %g s (Ctrl-C stops)", alias, which, repo, watch
        )

        def print_pass(report: SyncReport) -> None:  # one JSON line per pass that changed something
            if report.changed:
                sys.stdout.write(json.dumps(report.to_json()) + "\n")
                sys.stdout.flush()

        try:
            watch_alias(
                database(),
                store(),
                repo,
                alias,
                interval=watch,
                progress=progress,
                on_pass=print_pass if as_json else None,
                **options,
            )
        except KeyboardInterrupt:
            err_console.print("stopped")


def _log_changes() -> None:
    """Sync's log lines on stderr: through the console on a terminal, so that they print above the
    progress bar, and one plain unwrapped line each otherwise (journald, docker logs)."""
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("cvcycle.registry.sync").setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    app.command()(sync)
