"""Every error class maps to an HTTP status and to the CLI's exit code 2 with one line.

The API renders ``{"error", "hint"}`` with the class's status; the CLI prints the message (and the
hint) and exits 2. A new error class is checked here without being listed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from http import HTTPStatus

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cvcycle
from cvcycle.api import create_app
from cvcycle.cli.common import handle_errors
from cvcycle.errors import CvcycleError
from cvcycle.home import init_home
from cvcycle.settings import Settings


def _all_subclasses(cls: type[CvcycleError]) -> Iterator[type[CvcycleError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _error_classes() -> list[type[CvcycleError]]:
    # Import every module, so that error classes defined outside errors.py are found too.
    for module in pkgutil.walk_packages(cvcycle.__path__, "cvcycle."):
        if module.name.endswith("__main__") or ".migrations." in module.name:
            continue
        importlib.import_module(module.name)
    classes = [CvcycleError, *_all_subclasses(CvcycleError)]
    return sorted(set(classes), key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERRORS = _error_classes()


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_error_classes_live_in_the_one_hierarchy() -> None:
    assert len(ERRORS) >= 9
    assert all(issubclass(cls, CvcycleError) for cls in ERRORS)


@pytest.mark.parametrize("cls", ERRORS, ids=_name)
def test_every_error_class_has_a_real_http_status(cls: type[CvcycleError]) -> None:
    assert 400 <= HTTPStatus(cls.http_status) < 600
    assert cls.__doc__, f"{_name(cls)} says nowhere when it is raised"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    init_home(settings)
    app = create_app(settings)

    def _raise(index: int) -> None:
        raise _instance(ERRORS[index])

    # Before the app's catch-all route for the web UI's paths.
    app.add_api_route("/api/_raise/{index}", _raise)
    app.router.routes.insert(0, app.router.routes.pop())
    return TestClient(app, base_url="http://127.0.0.1")


def _instance(cls: type[CvcycleError]) -> CvcycleError:
    try:
        return cls("what went wrong", hint="what to do")
    except TypeError:  # a class with a constructor of its own (the server's ProtocolError takes a status)
        error = cls("what went wrong")
        error.hint = "what to do"
        return error


@pytest.mark.parametrize("index", range(len(ERRORS)), ids=[_name(c) for c in ERRORS])
def test_the_api_answers_every_error_with_its_status_and_body(client: TestClient, index: int) -> None:
    cls = ERRORS[index]
    response = client.get(f"/api/_raise/{index}")
    assert response.status_code == _instance(cls).http_status
    assert response.json() == {"error": "what went wrong", "hint": "what to do"}


@pytest.mark.parametrize("cls", ERRORS, ids=_name)
def test_the_cli_answers_every_error_with_exit_2_and_one_line(
    cls: type[CvcycleError],
) -> None:
    app = typer.Typer()

    @app.command()
    @handle_errors
    def fail() -> None:
        raise _instance(cls)

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: what went wrong", "hint: what to do"]
