"""Synthetic clips rendered in worker processes land in a dataset exactly as rendered in this one."""

from __future__ import annotations

from cvcycle.data.synthetic import SynthResult, add_synthetic_clips
from cvcycle.db import Database
from cvcycle.store import BlobStore


def test_clips_rendered_in_processes_are_the_clips_rendered_here(db: Database, store: BlobStore) -> None:
    def add(name: str, processes: int) -> SynthResult:
        return add_synthetic_clips(
            db, store, name, clips=8, lighting="day", seed=3, seconds=0.3, processes=processes
        )

    here, pooled = add("here", 1), add("pooled", 2)
    assert [c["status"] for c in here.clips] == ["ingested"] * 8
    # The same bytes are already stored, so every pooled clip links the media ingested above.
    assert [c["status"] for c in pooled.clips] == ["linked"] * 8
    keys = ("clip", "frames", "split", "boxes", "segments", "attributes")
    assert [{k: c[k] for k in keys} for c in pooled.clips] == [{k: c[k] for k in keys} for c in here.clips]
    assert (pooled.boxes, pooled.segments) == (here.boxes, here.segments)
    assert here.boxes > 0
