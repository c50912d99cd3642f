"""Settings: URLs are shown with their password masked, in the API and in `cvcycle init`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.settings import get_settings, redact_url


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql+psycopg://cv:pw@db:5432/cvcycle", "postgresql+psycopg://cv:***@db:5432/cvcycle"),
        ("http://user:p%40ss@mlflow.local/", "http://user:***@mlflow.local/"),
        ("postgresql://:secret@db/x", "postgresql://:***@db/x"),
        ("sqlite:////home/cv/.cvcycle/cvcycle.db", "sqlite:////home/cv/.cvcycle/cvcycle.db"),
        ("postgresql+psycopg://cv@db/cvcycle", "postgresql+psycopg://cv@db/cvcycle"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("file:///srv/store", "file:///srv/store"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["table", "json"])
def test_init_never_prints_the_tracking_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: list[str]
) -> None:
    monkeypatch.setenv("CVCYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CVCYCLE_TRACKING_URI", "http://mlflow:s3cret@mlflow.local:5000")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["init", *as_json])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output and "http://mlflow:***@mlflow.local:5000" in result.output
