"""Fixtures of the feedback tests: a production medium whose frames events refer to, and event lines."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cvcycle.data.ingest import IngestResult
from cvcycle.db import Database
from cvcycle.feedback.events import PushResult, push_events
from cvcycle.store import BlobStore

# The make_medium frames are 64x48.
WIDTH, HEIGHT = 64, 48


def image_bytes(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def medium(make_medium) -> IngestResult:  # type: ignore[no-untyped-def]
    """A 6-frame production clip, in a dataset of its own ("prod")."""
    result: IngestResult = make_medium("prod", 6, source="cam-1")
    return result


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """An event dict: a frame reference by default; keyword arguments override fields."""

    def make(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "source": "cam-1",
            "time": "2026-11-25T10:00:00+00:00",
            "model": "detector@1",
            "detections": [],
        }
        base.update(fields)
        return {k: v for k, v in base.items() if v is not None}

    return make


@pytest.fixture
def snapshot_b64() -> Callable[[int], str]:
    def make(seed: int) -> str:
        return base64.b64encode(image_bytes(seed)).decode()

    return make


@pytest.fixture
def push(db: Database, store: BlobStore) -> Callable[[list[Any]], PushResult]:
    """Push events given as dicts (serialised) or raw strings (as they are)."""

    def run(items: list[Any]) -> PushResult:
        return push_events(db, store, [i if isinstance(i, str) else json.dumps(i) for i in items])

    return run


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Encoded random pixels: ``make_image(seed, fmt="JPEG", size=(w, h))``."""
    return image_bytes
