"""Browser safety over real HTTP (uvicorn on a port): CSRF, the Host allow-list, body caps, headers."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

LiveServer = Any  # the ``live`` fixture of tests/web/conftest.py


def _report(live: LiveServer) -> str:
    return f"{live.url}/api/events/{live.sample.empty_event_ids[0]}/reports"


def test_a_cross_origin_text_plain_post_is_refused(live: LiveServer) -> None:
    response = httpx.post(
        _report(live),
        content='{"type": "confirmed"}',
        headers={"content-type": "text/plain", "origin": "http://evil.example"},
    )
    assert response.status_code == 403 and "content-type" in response.json()["error"]
    upload = httpx.post(
        f"{live.url}/api/events", content="{}\n", headers={"content-type": "text/plain;charset=UTF-8"}
    )
    assert upload.status_code == 403 and upload.json()["hint"]


def test_a_form_post_is_refused(live: LiveServer) -> None:
    form = httpx.post(_report(live), data={"type": "confirmed"})
    assert form.status_code == 403 and "application/json" in form.json()["error"]
    # A multipart form to the upload from another origin: the Origin check refuses it.
    foreign = httpx.post(
        f"{live.url}/api/events",
        files={"file": ("e.jsonl", b"{}\n")},
        headers={"origin": "http://evil.example"},
    )
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]


def test_a_same_origin_json_post_is_accepted(live: LiveServer) -> None:
    response = httpx.post(_report(live), json={"type": "confirmed"}, headers={"origin": live.url})
    assert response.status_code == 201, response.text
    other_port = httpx.post(
        _report(live), json={"type": "confirmed"}, headers={"origin": "http://127.0.0.1:1"}
    )
    assert other_port.status_code == 403


def test_a_host_outside_the_allow_list_is_refused(live: LiveServer) -> None:
    response = httpx.get(f"{live.url}/api/health", headers={"host": "attacker.example"})
    assert response.status_code == 400 and "attacker.example" in response.json()["error"]
    port = urlsplit(live.url).port
    assert httpx.get(f"{live.url}/api/health", headers={"host": f"localhost:{port}"}).status_code == 200


def test_a_body_over_the_cap_is_refused_before_it_is_all_sent(live: LiveServer) -> None:
    split = urlsplit(_report(live))
    declared = live.settings.max_body_bytes + 1
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        head = (
            f"POST {split.path} HTTP/1.1\r\nHost: {split.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"type": ')  # a few bytes of the body, no more
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"CVCYCLE_MAX_BODY_BYTES" in answer or b"over the limit" in answer


def test_a_chunked_body_over_the_cap_is_refused(live: LiveServer) -> None:
    big = b'{"type": "confirmed", "comment": "' + b"x" * live.settings.max_body_bytes + b'"}'
    response = httpx.post(
        _report(live), content=iter([big[:1000], big[1000:]]), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_security_headers_are_on_every_response(live: LiveServer) -> None:
    for path in ("/api/health", "/feed", "/static/js/api.js", "/api/nothing-here"):
        response = httpx.get(f"{live.url}{path}")
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
    shell = httpx.get(f"{live.url}/feed").headers["content-security-policy"]
    assert "script-src 'self'" in shell  # the UI shell keeps its own policy
