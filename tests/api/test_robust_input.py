"""No 5xx for hostile input: huge integers on every route, NaN and bad unicode, bad uploads."""

from __future__ import annotations

import re
from typing import Any

import pytest

# The fixture ``app`` (tests/api/conftest.py) is a FilledApp record.
FilledApp = Any


def _int_routes(app: FilledApp) -> list[tuple[str, str, list[dict[str, Any]]]]:
    spec = app.client.app.openapi()
    routes = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            ints = [p for p in op.get("parameters", []) if "integer" in str(p["schema"])]
            if ints:
                routes.append((method, path, op.get("parameters", [])))
    return routes


@pytest.mark.parametrize("value", [2**63, 2**64, -1, -(2**63) - 1])
def test_every_integer_parameter_refuses_out_of_range_without_a_5xx(app: FilledApp, value: int) -> None:
    routes = _int_routes(app)
    assert len(routes) >= 15
    for method, path, params in routes:
        for param in params:
            if "integer" not in str(param["schema"]):
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            query: dict[str, Any] = {p["name"]: 1 for p in params if p["in"] == "query" and p.get("required")}
            if param["in"] == "path":
                url = path.replace("{" + param["name"] + "}", str(value))
                url = re.sub(r"\{[^}]+\}", "1", url)
            else:
                query[param["name"]] = value
            if param["name"] == "max_events" or path.endswith("/stream"):
                query.setdefault("max_events", 1)
                if value < 0 or param["name"] == "max_events":
                    pass
                else:
                    continue  # a valid stream would wait for events
            response = app.client.request(method.upper(), url, params=query, json={})
            assert response.status_code < 500, (method, url, query, response.text)
            if value >= 2**63:  # 422 naming the field, or 404 where a route is not matched at all
                assert response.status_code in (404, 422), (method, url, response.text)
                if response.status_code == 422:
                    assert param["name"] in response.json()["error"], (method, url, response.text)


def test_validation_errors_with_nan_surrogates_and_huge_ints_answer_422(app: FilledApp) -> None:
    event = app.sample.event_ids_with_boxes[0]
    bodies = [
        b'{"type": "confirmed", "detection": NaN}',
        b'{"type": "confirmed", "box": {"cls": "a", "x": Infinity, "y": 0, "w": 1, "h": 1}}',
        b'{"type": "x\\ud800"}',
        b'{"type": "confirmed", "operator": "\\udc00"}',
        b'{"type": "confirmed", "detection": 9223372036854775808}',
    ]
    for body in bodies:
        response = app.client.post(
            f"/api/events/{event}/reports", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, (body, response.text)
        assert set(response.json()) == {"error", "hint", "detail"}


def test_upload_with_hostile_lines_keeps_the_good_ones(app: FilledApp) -> None:
    from cvcycle.demo.sample_home import sample_event_lines

    good = list(sample_event_lines(2, id_prefix="robust"))
    body = "\n".join([good[0], "[" * 100_000, '{"source": NaN}', '{"id": "\\ud800"}', good[1]]) + "\n"
    response = app.client.post("/api/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["kept"] == 2 and [e["line"] for e in result["errors"]] == [2, 3, 4]


@pytest.mark.parametrize(
    ("content_type", "body", "named"),
    [
        ("image/png", b"\x89PNG", "content-type"),
        ("application/x-www-form-urlencoded", b"a=1", "content-type"),
        ("multipart/form-data", b"garbage", "multipart"),
        ("multipart/form-data; boundary=xx", b"--xx\r\ngarbage", "file"),
    ],
)
def test_upload_of_a_wrong_type_or_bad_form_is_4xx(
    app: FilledApp, content_type: str, body: bytes, named: str
) -> None:
    response = app.client.post("/api/events", content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500 and named in response.json()["error"], response.text
