"""Every page renders from the API over a filled home, in a real browser, without a script error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

Live = Any  # the ``live`` fixture of tests/web/conftest.py


@pytest.mark.parametrize(
    ("path", "name", "visible"),
    [
        ("/timeline", "timeline", "#timeline li.deployment"),
        ("/datasets", "datasets", "#datasets-table tbody tr"),
        ("/datasets/home", "dataset-home", "#versions-table tbody tr"),
        ("/runs", "runs", "#runs-table tbody tr"),
        ("/models", "models", ".models-table .badge.alias"),
        ("/models/detector/1", "model-version", "h1"),
        ("/models/detector/2", "model-gate-report", "#gate-report .badge.pass"),
    ],
)
def test_page_renders(
    page: Any, live: Live, screenshot: Callable[[Any, str], Path], path: str, name: str, visible: str
) -> None:
    page.goto(f"{live.url}{path}")
    expect(page.locator(visible).first).to_be_visible()
    expect(page.locator(f'#nav a[href="/{path.split("/")[1]}"]')).to_have_class("active")
    screenshot(page, f"page-{name}")
    assert page.errors == []


def test_run_page_shows_metrics_and_history(
    page: Any, live: Live, screenshot: Callable[[Any, str], Path]
) -> None:
    run_id = live.api("GET", "/api/runs").json()[0]["id"]
    page.goto(f"{live.url}/runs/{run_id}")
    expect(page.locator("#metrics-table")).to_contain_text("val_map50")
    expect(page.locator("svg.chart polyline").first).to_be_attached()
    screenshot(page, "page-run")
    assert page.errors == []


def test_dataset_diff_and_unknown_names_show_the_api_error(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/datasets/home")
    expect(page.locator("#diff")).to_contain_text("home@1")
    expect(page.get_by_role("cell", name="every frame", exact=True)).to_be_visible()  # the slice "all"
    page.goto(f"{live.url}/datasets/no-such-set")
    expect(page.locator(".error")).to_contain_text("dataset 'no-such-set' does not exist")
    page.goto(f"{live.url}/nowhere")
    expect(page.locator("h1")).to_have_text("Not found")
    assert page.errors == []


def test_navigation_moves_between_screens_without_reloading(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/feed")
    page.evaluate("window.__sameDocument = true")
    page.click('#nav a[href="/dashboard"]')
    expect(page.locator("h1")).to_have_text("Feedback dashboard")
    page.click('#nav a[href="/models"]')
    expect(page.locator("h1")).to_have_text("Models")
    page.go_back()
    expect(page.locator("h1")).to_have_text("Feedback dashboard")
    assert page.evaluate("window.__sameDocument") is True
    assert page.errors == []
