"""The app shell: health, the error mapping and the UI fallback."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cvcycle.api import create_app
from cvcycle.home import init_home
from cvcycle.settings import Settings


def test_health_openapi_and_shell(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    init_home(settings)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    assert client.get("/api/health").json()["status"] == "ok"
    assert "/api/health" in client.get("/openapi.json").json()["paths"]
    assert "<main" in client.get("/tasks/7").text
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and "/api/nothing-here" in missing.json()["error"]
