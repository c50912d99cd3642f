"""``cvcycle store verify|gc`` through the real CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.data.ingest import ingest_file
from cvcycle.db import open_database
from cvcycle.settings import get_settings
from cvcycle.store import BlobStore, open_store

runner = CliRunner()


def cv(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"cvcycle {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def cvj(*args: str, code: int = 0) -> Any:
    return json.loads(cv(*args, "--json", code=code))


def backdate(store: BlobStore, key: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(store.local_path(key), (then, then))


def filled(tmp_path: Path) -> tuple[BlobStore, set[str]]:
    """An initialised home with one ingested image; its store and the keys rows reference."""
    cv("init")
    image = tmp_path / "shot.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
    settings = get_settings()
    db, store = open_database(settings), open_store(settings)
    result = ingest_file(db, store, "cams", image)
    db.dispose()
    assert result.status == "ingested"
    return store, set(store.iter_keys())


def test_store_verify(home: Path, tmp_path: Path) -> None:
    store, keys = filled(tmp_path)
    assert "all good" in cv("store", "verify")
    assert cvj("store", "verify") == {
        "ok": True,
        "checked": len(keys),
        "bytes": sum(len(store.get_bytes(k)) for k in keys),
        "corrupt": 0,
        "missing": 0,
        "problems": [],
    }
    bad, good = sorted(keys)
    path = store.local_path(bad)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))

    out = cv("store", "verify", code=1)
    assert f"corrupt: {bad}" in " ".join(out.split())
    report = cvj("store", "verify", code=1)
    assert [(p["key"], p["problem"]) for p in report["problems"]] == [(bad, "corrupt")]
    assert report["problems"][0]["used_by"]  # the frame or the medium that holds it
    assert cvj("store", "verify", good)["ok"] is True
    cv("store", "verify", "not-a-key", code=2)


def test_store_gc(home: Path, tmp_path: Path) -> None:
    store, keys = filled(tmp_path)
    orphan = store.put_bytes(b"left by an import that was killed")
    young = store.put_bytes(b"an import in flight")
    for key in keys | {orphan.key}:
        backdate(store, key, 2 * 24 * 3600)

    out = cv("store", "gc")
    assert orphan.key in out and "would delete 1 unreferenced blobs" in out and "kept 1 younger" in out
    dry = cvj("store", "gc")
    assert dry["deleted"] is False and dry["count"] == 1 and dry["bytes"] == orphan.size
    assert [b["key"] for b in dry["blobs"]] == [orphan.key]
    assert store.exists(orphan.key)  # a dry run deletes nothing

    assert cvj("store", "gc", "--grace", "3d")["count"] == 0
    done = cvj("store", "gc", "--delete")
    assert done["deleted"] is True and [b["key"] for b in done["blobs"]] == [orphan.key]
    assert set(store.iter_keys()) == keys | {young.key}
    assert "deleted 0 unreferenced blobs" in cv("store", "gc", "--delete")
    assert cvj("store", "verify")["ok"] is True
    cv("store", "gc", "--grace", "soon", code=2)
