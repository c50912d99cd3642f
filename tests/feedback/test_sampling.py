"""Sampling empty frames for missed-detection review: deterministic by seed, never the same image twice."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete

from cvcycle.annotate.tasks import list_tasks
from cvcycle.boxes import Box
from cvcycle.data.ingest import IngestResult
from cvcycle.db import Database
from cvcycle.db.models import ReviewSample
from cvcycle.errors import InvalidInput
from cvcycle.feedback.events import PushResult
from cvcycle.feedback.reports import report_event, sample_review_frames

Push = Callable[[list[Any]], PushResult]
PERSON = {"cls": "person", "score": 0.8, "box": [2, 3, 20, 30]}


@pytest.fixture
def feed(make_medium, push: Push, event: Callable[..., dict[str, Any]]) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    """24 empty frames on two cameras a minute apart, 6 frames with a detection, and a second model."""
    clip: IngestResult = make_medium("prod", 30, source="cam-1")
    lines = []
    for i, frame_id in enumerate(clip.frame_ids):
        lines.append(
            event(
                frame={"id": frame_id},
                source=f"cam-{1 + i % 2}",
                time=f"2026-11-25T10:{i:02d}:00Z",
                detections=[PERSON] if i % 5 == 0 else [],
            )
        )
    # The same images seen by another version: an image drawn once is never drawn again.
    lines += [event(frame={"id": f}, model="detector@2") for f in clip.frame_ids[:10]]
    result = push(lines)
    assert result.ok
    ids = result.event_ids
    return {
        "empty_v1": [e for i, e in enumerate(ids[:30]) if i % 5 != 0],
        "detected_v1": [e for i, e in enumerate(ids[:30]) if i % 5 == 0],
        "v2": ids[30:],
    }


def test_sampling_is_deterministic_and_never_repeats_an_image(
    db: Database, feed: dict[str, list[int]]
) -> None:
    first = sample_review_frames(db, "detector@1", limit=5, seed=11)
    assert len(first) == 5 and {p.event_id for p in first} <= set(feed["empty_v1"])

    # Forgetting the samples and drawing again with the same seed gives the same frames.
    with db.write() as s:
        s.execute(delete(ReviewSample))
    assert sample_review_frames(db, "detector@1", limit=5, seed=11) == first
    other_seed = sample_review_frames(db, "detector@1", limit=5, seed=12)
    assert not {p.image_key for p in other_seed} & {p.image_key for p in first}

    rest = sample_review_frames(db, "detector@1", limit=100, seed=11)
    drawn = [p.image_key for p in first + other_seed + rest]
    assert len(drawn) == len(set(drawn)) == len(feed["empty_v1"])
    assert sample_review_frames(db, "detector@1", limit=5, seed=11) == []
    # detector@2 saw the same images; they were all drawn already except those v1 detected on.
    v2 = sample_review_frames(db, "detector@2", limit=100, seed=11)
    assert {p.model for p in v2} == {"detector@2"}
    assert len(v2) == 2  # frames 0 and 5: v1 had detections there, so they were not drawn for v1


def test_rate_and_time_gap_keep_the_sample_sparse(db: Database, feed: dict[str, list[int]]) -> None:
    everything = sample_review_frames(db, "detector@1", limit=100, rate=0.3, seed=5)
    assert 0 < len(everything) < len(feed["empty_v1"])
    with db.write() as s:
        s.execute(delete(ReviewSample))
    assert sample_review_frames(db, "detector@1", limit=100, rate=0.3, seed=5) == everything

    with db.write() as s:
        s.execute(delete(ReviewSample))
    spaced = sample_review_frames(db, "detector", limit=100, min_gap_s=600, seed=5)
    for source in ("cam-1", "cam-2"):
        times = sorted(p.time for p in spaced if p.source == source)
        assert times and all((b - a).total_seconds() >= 600 for a, b in itertools.pairwise(times))


def test_a_missed_detection_on_a_sampled_frame_opens_a_task(db: Database, feed: dict[str, list[int]]) -> None:
    (picked,) = sample_review_frames(db, "detector@1", limit=1, seed=3)
    report = report_event(db, picked.event_id, "missed_detection", box=Box("person", 5, 5, 10, 20))
    (task,) = list_tasks(db, status="open")
    assert (task.id, task.frame_id, task.event_ids) == (report.task_id, picked.frame_id, [picked.event_id])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"rate": 0.0}, "rate"),
        ({"rate": 1.5}, "rate"),
        ({"min_gap_s": -1}, "min_gap"),
    ],
)
def test_bad_sampling_arguments(db: Database, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        sample_review_frames(db, "detector", **kwargs)
