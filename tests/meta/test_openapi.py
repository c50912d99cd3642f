"""Every JSON route declares its response shape in /openapi.json.

A route's success response (its first 2xx) must name a schema that says what the JSON holds: a
``$ref`` to a component, a list or map of such, or a plain typed value, never ``{}`` or a bare
object with any properties. Every ``$ref`` in the document must name a component that exists. The
routes that answer something other than JSON are listed below with their media type; they must not
claim JSON.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cvcycle.api import create_app
from cvcycle.home import init_home
from cvcycle.settings import Settings

#: (method, path) -> the media type the route answers with, for every route that is not JSON.
NOT_JSON = {
    ("GET", "/api/media/{media_id}/frames/{index}.jpg"): "image/jpeg",
    ("GET", "/api/events/{event_id}/image"): "image/jpeg",
    ("GET", "/api/events/stream"): "text/event-stream",
}

PRIMITIVES = {"string", "integer", "number", "boolean"}


def _document() -> dict[str, Any]:
    """/openapi.json as the app serves it, over an empty home."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        init_home(settings)
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            response = client.get("/openapi.json")
        app.state.db.dispose()
    assert response.status_code == 200
    return response.json()


DOCUMENT = _document()
COMPONENTS: dict[str, Any] = DOCUMENT.get("components", {}).get("schemas", {})


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    codes = sorted(code for code in operation["responses"] if code.startswith("2"))
    assert codes, "no success response"
    return codes[0], operation["responses"][codes[0]]


OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]
JSON_ROUTES = [(m, p, op) for m, p, op in OPERATIONS if (m, p) not in NOT_JSON]


def _undeclared(schema: dict[str, Any], where: str = "response") -> list[str]:
    """Where ``schema`` leaves the shape open (empty, or an object with any properties)."""
    if "$ref" in schema:
        return []
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return [
                problem
                for i, part in enumerate(schema[combinator])
                for problem in _undeclared(part, f"{where}.{combinator}[{i}]")
            ]
    kind = schema.get("type")
    if kind in PRIMITIVES or kind == "null" or "enum" in schema or "const" in schema:
        return []
    if kind == "array":
        return _undeclared(schema.get("items", {}), f"{where}[]")
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return _undeclared(values, f"{where}{{}}")
        if schema.get("properties"):
            return []
        return [f"{where} is an object with any properties"]
    return [f"{where} has no schema ({json.dumps(schema)})"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_the_document_has_json_routes() -> None:
    assert len(JSON_ROUTES) > 20


@pytest.mark.parametrize("method, path, operation", JSON_ROUTES, ids=[f"{m} {p}" for m, p, _ in JSON_ROUTES])
def test_every_json_route_declares_its_response_shape(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    code, response = _success(operation)
    content = response.get("content", {})
    assert list(content) == ["application/json"], f"{method} {path} {code} answers {list(content)}"
    schema = content["application/json"].get("schema", {})
    problems = _undeclared(schema)
    assert not problems, f"{method} {path} {code}: " + "; ".join(problems)


@pytest.mark.parametrize("method, path", sorted(NOT_JSON), ids=[f"{m} {p}" for m, p in sorted(NOT_JSON)])
def test_routes_that_are_not_json_say_so(method: str, path: str) -> None:
    operation = DOCUMENT["paths"][path][method.lower()]
    _, response = _success(operation)
    content = response.get("content", {})
    assert "application/json" not in content, (
        f"{method} {path} claims JSON; it answers {NOT_JSON[method, path]}"
    )
    assert set(content) <= {NOT_JSON[method, path]}


def test_every_reference_names_a_component() -> None:
    prefix = "#/components/schemas/"
    refs = set(_refs(DOCUMENT))
    assert all(ref.startswith(prefix) for ref in refs), sorted(refs)
    missing = sorted(ref for ref in refs if ref[len(prefix) :] not in COMPONENTS)
    assert not missing, f"references to components that do not exist: {missing}"
