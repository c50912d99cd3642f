"""Every API route has a test that calls it.

A route's path template becomes a pattern (each ``{param}`` matches one path segment, a literal or
an f-string placeholder); some test module under tests/ (other than the meta-tests, which name
routes without calling them) must name a matching path together with the route's method.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from cvcycle.api import create_app
from cvcycle.home import init_home
from cvcycle.settings import Settings

TESTS = Path(__file__).resolve().parents[1]
SOURCES = {
    path: path.read_text()
    for path in TESTS.rglob("*.py")
    if path.name.startswith("test_") and path.parent != Path(__file__).resolve().parent
}


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app documents in /openapi.json."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        init_home(settings)
        app = create_app(settings)
        paths = app.openapi()["paths"]
        app.state.db.dispose()
    return [(method.upper(), path) for path, ops in paths.items() for method in sorted(ops)]


ROUTES = _routes()


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    body = "".join(r"(?:\{[^}]*\}|[^/\"'?\s{]+)" if p.startswith("{") else re.escape(p) for p in parts)
    # The path ends there, or a query string, a quote or an f-string part follows.
    return re.compile(body + r"(?=[\"'?]|$)", re.MULTILINE)


def test_the_app_has_routes() -> None:
    assert len(ROUTES) > 20


@pytest.mark.parametrize("method, path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_is_called_by_a_test(method: str, path: str) -> None:
    pattern = _pattern(path)
    call = re.compile(rf"\.{method.lower()}\(|method=[\"']{method}[\"']|[\"']{method}[\"']", re.IGNORECASE)
    callers = [p for p, text in SOURCES.items() if pattern.search(text) and call.search(text)]
    assert callers, f"no test calls {method} {path}"
