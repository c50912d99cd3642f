"""Shared fixtures of the browser tests: a filled home, the app on a live port, headless Chromium.

* ``live`` (session): a home filled by ``fill_sample_home`` (a short clip in ``home@1``,
  ``detector@1`` in production, a dozen events with snapshots), served by uvicorn in a thread on a
  free port. Tests share it, so each test makes what it needs unique (its own events, sources,
  names) and never counts on another test's writes.
* ``browser`` (session) and ``page`` (per test): Playwright driving Debian's Chromium, headless.
  Without ``/usr/bin/chromium`` every browser test skips and says so.
* ``screenshot(page, name)``: saves ``<artifacts>/<name>.png``; artifacts go to
  ``$CVCYCLE_TEST_ARTIFACTS`` or ``tests/web/artifacts`` (ignored by git).
* ``push_event(**fields)``: pushes one event through the API and returns its id.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cvcycle.api import create_app
from cvcycle.db import Database, open_database
from cvcycle.demo.sample_home import SampleHome, fill_sample_home, sample_event_lines
from cvcycle.home import init_home
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("CVCYCLE_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    settings: Settings
    db: Database
    store: BlobStore
    sample: SampleHome

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=30, **kwargs)


class ServerThread:
    """uvicorn serving an app in a daemon thread; ``stop`` asks it to exit and waits."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the app at {self.url} did not answer within 30 s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(home=tmp_path_factory.mktemp("web") / "home")
    init_home(settings)
    db, store = open_database(settings), open_store(settings)
    sample = fill_sample_home(db, store)
    server = ServerThread(create_app(settings, db=db, store=store), free_port())
    server.start()
    yield LiveServer(server.url, settings, db, store, sample)
    server.stop()
    db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make browser) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; uncaught page errors are collected in ``page.errors`` (tests assert it stays empty)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    return save


_EVENT_SEEDS = itertools.count(1000)


@pytest.fixture
def push_event(live: LiveServer) -> Callable[..., int]:
    """Push one event (a sample event with ``fields`` overriding it) through the API; returns its id.

    Every event shows an image of its own (a clip of its own seed), since the missed-detection
    sampling draws an image once, whichever event shows it.
    """

    def push(**fields: Any) -> int:
        n = next(_EVENT_SEEDS)
        line = json.loads(next(sample_event_lines(1, seed=n, id_prefix=f"t{time.monotonic_ns()}-{n}")))
        line.update(fields)
        response = live.api(
            "POST", "/api/events", content=json.dumps(line), headers={"content-type": "application/x-ndjson"}
        )
        assert response.status_code == 200, response.text
        ids: list[int] = response.json()["event_ids"]
        return ids[0]

    return push
