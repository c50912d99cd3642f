"""Synthetic clips from ``cvcycle.synth`` ingested into a dataset together with their ground truth."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcycle.data.ingest import IngestResult, ProgressFn, ingest_file
from cvcycle.data.interchange import export_coco
from cvcycle.data.labels import BoxInput, SegmentInput, add_boxes, add_segments
from cvcycle.db.engine import Database
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore
from cvcycle.synth import ClipSpec, generate_clips, write_clip


@dataclass
class SynthResult:
    clips: list[dict[str, Any]]
    boxes: int
    segments: int
    coco: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"clips": self.clips, "boxes": self.boxes, "segments": self.segments, "coco": self.coco}


def _add_ground_truth(db: Database, name: str, spec: ClipSpec, result: IngestResult) -> tuple[int, int]:
    frame_id = dict(enumerate(result.frame_ids))
    boxes = [
        BoxInput(
            frame_id=frame_id[b.frame_index],
            cls=b.cls,
            x=b.x,
            y=b.y,
            w=b.w,
            h=b.h,
            track_id=b.track_id,
            source="import",
        )
        for b in spec.boxes
    ]
    segments = [
        SegmentInput(
            media_id=result.media_id or 0,
            cls=s.cls,
            start_frame=s.start_frame,
            end_frame=s.end_frame,
            track_id=s.track_id,
            source="import",
        )
        for s in spec.segments
    ]
    with db.write() as session:
        add_boxes(session, name, boxes, author="synth")
        add_segments(session, name, segments, author="synth")
    return len(boxes), len(segments)


# Below this many clips, starting render processes costs more than they save.
_POOL_MIN_CLIPS = 8


@contextmanager
def _rendered(specs: Sequence[ClipSpec], video_dir: Path, processes: int) -> Iterator[Iterator[Path]]:
    """The clips' MP4s, in order, rendered by ``processes`` processes ahead of the consumer.

    Rendering and encoding a clip is pure CPU work that depends on its spec alone, so the files are
    the same whichever process writes them; the caller ingests each one while the next render.
    Leaving the block early cancels the renders not yet started.
    """
    paths = [video_dir / f"{spec.name}.mp4" for spec in specs]
    if processes <= 1 or len(specs) < _POOL_MIN_CLIPS:
        yield (write_clip(spec, path) for spec, path in zip(specs, paths, strict=True))
        return
    # spawn, not fork: the caller may hold database connections and torch's thread pools.
    pool = ProcessPoolExecutor(min(processes, len(specs)), mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool.map(write_clip, specs, paths)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def add_synthetic_clips(
    db: Database,
    store: BlobStore,
    name: str,
    *,
    clips: int,
    lighting: str,
    dogs: bool = False,
    seed: int = 0,
    seconds: float = 8.0,
    empty_share: float = 0.0,
    out_dir: Path | None = None,
    progress: ProgressFn | None = None,
    processes: int | None = None,
) -> SynthResult:
    """Render ``clips`` clips, ingest them into ``name`` and add their exact boxes and fall segments.

    Each clip lasts ``seconds`` (at 10 fps); ``empty_share`` of them show no people. Clips already
    in the dataset (same seed and settings) are left as they are. With ``out_dir`` the MP4s go to
    ``out_dir/videos`` and a COCO export of their frames to ``out_dir``. From eight clips on,
    they render in ``processes`` processes (default: one per CPU) while this one ingests them in
    order; the processes are spawned, so a script calling this needs Python's
    ``if __name__ == "__main__":`` guard, as with any multiprocessing code.
    """
    specs = generate_clips(clips, lighting, dogs, seed, seconds=seconds, empty_share=empty_share)
    summary: list[dict[str, Any]] = []
    total_boxes = total_segments = 0
    media_shas: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cvcycle-synth-") as tmp:
        video_dir = out_dir / "videos" if out_dir else Path(tmp)
        video_dir.mkdir(parents=True, exist_ok=True)
        workers = processes if processes is not None else (os.cpu_count() or 1)
        with _rendered(specs, video_dir, workers) as paths:
            for spec, path in zip(specs, paths, strict=True):
                result = ingest_file(
                    db, store, name, path, source="synth", attributes=spec.attributes, progress=progress
                )
                boxes = segments = 0
                if result.status in ("ingested", "linked"):
                    boxes, segments = _add_ground_truth(db, name, spec, result)
                total_boxes += boxes
                total_segments += segments
                media_shas.append(result.sha256 or "")
                summary.append(
                    {
                        "clip": spec.name,
                        "status": result.status,
                        "frames": result.frames,
                        "split": result.split,
                        "boxes": boxes,
                        "segments": segments,
                        "attributes": spec.attributes,
                    }
                )
    coco = None
    if out_dir is not None:
        with db.read() as session:
            coco = export_coco(session, store, DatasetRef(name), f"media={'|'.join(media_shas)}", out_dir)
    return SynthResult(summary, total_boxes, total_segments, coco)
