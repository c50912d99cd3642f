"""``python -m cvcycle.serve --repo DIR``: the server alone, for a serving box with no database or torch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cvcycle.errors import CvcycleError
from cvcycle.serve.options import HELP, port_or_off
from cvcycle.serve.repository import CONTROL_MODES
from cvcycle.serve.server import ServerOptions, run_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvcycle.serve", description=__doc__)
    parser.add_argument("--repo", required=True, help=HELP["repo"])
    parser.add_argument("--host", default="127.0.0.1", help=HELP["host"])
    parser.add_argument("--http-port", type=int, default=8000, help=HELP["http_port"])
    parser.add_argument("--grpc-port", type=int, default=8001, help=HELP["grpc_port"])
    parser.add_argument("--metrics-port", type=int, default=8002, help=HELP["metrics_port"])
    parser.add_argument(
        "--model-control-mode", choices=CONTROL_MODES, default="poll", help=HELP["control_mode"]
    )
    parser.add_argument("--load-model", action="append", default=[], help=HELP["load_model"])
    parser.add_argument(
        "--poll-interval",
        "--repository-poll-secs",
        "--poll",
        type=float,
        default=2.0,
        help=HELP["poll_interval"],
    )
    parser.add_argument("--session-threads", type=int, default=0, help=HELP["session_threads"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = ServerOptions(
        repo=Path(args.repo),
        host=args.host,
        http_port=port_or_off(args.http_port),
        grpc_port=port_or_off(args.grpc_port),
        metrics_port=port_or_off(args.metrics_port),
        control_mode=args.model_control_mode,
        load_models=args.load_model,
        poll_interval=args.poll_interval,
        session_threads=args.session_threads,
    )
    try:
        run_server(options)
    except CvcycleError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
