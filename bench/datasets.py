"""Dataset benchmarks, SQLite and PostgreSQL side by side.

Prints: registering 100,000 frames; adding 1,000,000 boxes to the working copy and committing
them; a 1,000-box change committed on top (cost follows the change); the diff of the two 1M-box
versions; a 100,000-box slice snapshot; materialising the 1M-box manifest; and frame-ingest
throughput as a ratio to plain PyAV decoding. Run with ``make bench`` (``--frames`` to scale).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import create_engine, select, text

from cvcycle.data.ingest import record_media
from cvcycle.data.labels import BoxInput, add_boxes, edit_box
from cvcycle.data.manifest import materialize_manifest
from cvcycle.data.selection import resolve_selection
from cvcycle.data.snapshot import iter_boxes
from cvcycle.data.versions import DatasetDiff, commit_version, diff_versions
from cvcycle.db import Database, upgrade_database
from cvcycle.db.models import Label, Media
from cvcycle.store import BlobStore
from cvcycle.synth import generate_clips, write_clip

sys.path.insert(0, str(Path(__file__).parent))
from ingest import make_test_video, measure_ingest

PG_SERVER = os.environ.get("CVCYCLE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
FRAMES_PER_MEDIUM = 1_000
BOXES_PER_FRAME = 10


def _n(count: int) -> str:
    """1000000 -> 1M, 100000 -> 100k."""
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(db: Database, store: BlobStore, frames: int, manifests: Path) -> dict[str, float]:
    media_count = frames // FRAMES_PER_MEDIUM
    slice_boxes = len(range(0, media_count, 10)) * FRAMES_PER_MEDIUM * BOXES_PER_FRAME  # source=cam-3
    nf, nb, ns = _n(frames), _n(frames * BOXES_PER_FRAME), _n(slice_boxes)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, format="JPEG")
    blob = store.put_bytes(buf.getvalue())
    figures: dict[str, float] = {}

    def register() -> list[int]:
        ids: list[int] = []
        with db.write() as s:
            for m in range(media_count):
                media = Media(
                    sha256=hashlib.sha256(f"bench-{m}".encode()).hexdigest(),
                    kind="video",
                    file_name=f"m{m}.mp4",
                    blob_key=blob.key,
                    size=blob.size,
                    width=640,
                    height=360,
                    fps=10.0,
                    frame_count=FRAMES_PER_MEDIUM,
                    duration_s=100.0,
                    codec="h264",
                    source="cam-3" if m % 10 == 0 else f"cam-{10 + m % 7}",
                    attributes={"lighting": "day"},
                )
                rows = [
                    {
                        "index": i,
                        "timestamp_s": i / 10,
                        "blob_key": blob.key,
                        "blob_size": blob.size,
                        "width": 640,
                        "height": 360,
                    }
                    for i in range(FRAMES_PER_MEDIUM)
                ]
                ids.extend(record_media(s, "bench", media, rows).frame_ids)
        return ids

    figures[f"register {nf} frames"], frame_ids = timed(register)
    with db.write() as s:
        commit_version(s, "bench", "frames only")
    boxes = [
        BoxInput(frame_id=f, cls=("person", "fallen_person")[b % 2], x=10 * b, y=20, w=30, h=60, track_id=b)
        for f in frame_ids
        for b in range(BOXES_PER_FRAME)
    ]

    def add() -> None:
        with db.write() as s:
            add_boxes(s, "bench", boxes, author="bench")

    figures[f"add {nb} boxes to working copy"], _ = timed(add)

    def commit(message: str) -> None:
        with db.write() as s:
            commit_version(s, "bench", message)

    figures[f"commit v2 ({nb} boxes added)"], _ = timed(lambda: commit("1M boxes"))
    figures[f"add + commit {nb} boxes (goal <= 20 s)"] = (
        figures[f"add {nb} boxes to working copy"] + figures[f"commit v2 ({nb} boxes added)"]
    )

    with db.read() as s:
        keys = list(
            s.scalars(select(Label.key).where(Label.deleted_v.is_(None)).order_by(Label.key).limit(1000))
        )

    def edit() -> None:
        with db.write() as s:
            for key in keys:
                edit_box(s, "bench", key, 1, {"x": 11})

    figures["edit 1,000 boxes (working copy)"], _ = timed(edit)
    figures["commit v3, a 1,000-box change (goal <= 0.5 s)"], _ = timed(lambda: commit("1k edits"))

    def diff(old: int, new: int) -> DatasetDiff:
        with db.read() as s:
            return diff_versions(s, "bench", old, new)

    figures[f"diff v2..v3, {nb}-box versions (goal <= 2 s)"], d = timed(lambda: diff(2, 3))
    assert d.labels.changed.count == 1000, d.labels.changed.count
    figures[f"diff v1..v2, all {nb} boxes added"], d = timed(lambda: diff(1, 2))
    assert d.labels.added.count == len(boxes), d.labels.added.count

    def snapshot() -> int:
        with db.read() as s:
            return sum(1 for _ in iter_boxes(s, resolve_selection(s, "bench@3", "source=cam-3")))

    figures[f"{ns}-box slice snapshot (goal <= 1 s)"], n = timed(snapshot)
    assert n == slice_boxes, n

    def materialize() -> int:
        with db.read() as s:
            return materialize_manifest(s, resolve_selection(s, "bench@3"), manifests).boxes

    figures[f"materialise {nb}-box manifest (goal <= 10 s)"], n = timed(materialize)
    assert n == len(boxes), n
    return figures


def sqlite_db(tmp: Path) -> Database:
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade_database(url)
    return Database(url)


def postgres_db() -> Database | None:
    try:
        admin = create_engine(
            f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS cvcycle_bench WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE cvcycle_bench"))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - report and carry on with SQLite alone
        print(f"PostgreSQL skipped: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return None
    url = f"{PG_SERVER}/cvcycle_bench"
    upgrade_database(url)
    return Database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000, help="frames (x10 boxes); default 100,000")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cvcycle-bench-") as tmp_name:
        tmp = Path(tmp_name)
        store = BlobStore.from_url((tmp / "store").as_uri())
        for backend, factory in (("sqlite", lambda: sqlite_db(tmp)), ("postgresql", postgres_db)):
            db = factory()
            if db is None:
                continue
            print(f"running on {backend} ...", file=sys.stderr, flush=True)
            results[backend] = run(db, store, args.frames, tmp / f"manifests-{backend}")
            db.dispose()
        hd = make_test_video(tmp / "bench-720p.mp4")
        clip = write_clip(generate_clips(1, "day", dogs=False, seed=1, seconds=30.0)[0], tmp / "synth.mp4")
        ingest = {
            "1280x720 textured clip": measure_ingest(hd),
            "320x240 synthetic clip": measure_ingest(clip),
        }
    names = list(next(iter(results.values())))
    width = max(len(n) for n in names) + 2
    print(f"\n{'':{width}}" + "".join(f"{b:>12}" for b in results))
    for name in names:
        print(f"{name:{width}}" + "".join(f"{results[b][name]:>11.2f}s" for b in results))
    print("\nframe ingest (every frame decoded + JPEG q90) vs plain PyAV decoding, goal ratio >= 0.5:")
    for name, m in ingest.items():
        print(
            f"  {name:24} ingest {m['ingest_fps']:7.0f} fps   decode {m['plain_decode_fps']:7.0f} fps"
            f"   ratio {m['ratio']:.2f}   (ceiling on {m['cpus']} cores: {m['ceiling_ratio']:.2f})"
        )


if __name__ == "__main__":
    main()
