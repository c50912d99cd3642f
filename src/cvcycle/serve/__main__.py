"""``python -m cvcycle.serve --repo DIR``: the server alone, for a serving box with no database or torch."""

from __future__ import annotations

import argparse
import logging
import sys

from cvcycle.errors import CvcycleError
from cvcycle.serve.app import run_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvcycle.serve", description=__doc__)
    parser.add_argument("--repo", required=True, help="The model repository (Triton layout).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port.")
    parser.add_argument(
        "--poll", type=float, default=2.0, help="Seconds between repository polls (0: never)."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        run_server(args.repo, args.host, args.http_port, args.poll)
    except CvcycleError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
