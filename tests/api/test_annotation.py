"""The annotation API over a real SQLite home: pseudo-labels, drafts with revisions, review, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cvcycle.api import create_app
from cvcycle.boxes import Box
from cvcycle.db import open_database
from cvcycle.demo.sample_home import SampleHome, fill_sample_home
from cvcycle.feedback.reports import report_event
from cvcycle.home import init_home
from cvcycle.settings import Settings
from cvcycle.store import open_store


@dataclass
class Home:
    client: TestClient
    sample: SampleHome
    settings: Settings

    def report(self, event_index: int = 0) -> int:
        """An operator reports the first box of an event as inaccurate: returns the task id."""
        db = open_database(self.settings)
        try:
            record = report_event(
                db,
                self.sample.event_ids_with_boxes[event_index],
                "inaccurate_detection",
                box=Box("person", 10, 10, 40, 80),
                detection=0,
                operator="olga",
            )
        finally:
            db.dispose()
        assert record.task_id is not None
        return record.task_id


def _home(tmp_path: Path, **settings: Any) -> Iterator[Home]:
    config = Settings(home=tmp_path / "home", **settings)
    init_home(config)
    db, store = open_database(config), open_store(config)
    sample = fill_sample_home(db, store, events=6)
    with TestClient(create_app(config, db=db, store=store), base_url="http://127.0.0.1") as client:
        yield Home(client, sample, config)
    db.dispose()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    yield from _home(tmp_path, spot_check_share=0.0)


def _take(home: Home, task_id: int, annotator: str) -> dict[str, Any]:
    response = home.client.post(f"/api/tasks/{task_id}/assignments", json={"annotator": annotator})
    assert response.status_code == 200, response.text
    return response.json()


def _save(home: Home, assignment: dict[str, Any], draft: dict[str, Any], author: str) -> Any:
    return home.client.put(
        f"/api/assignments/{assignment['id']}/draft",
        json={"rev": assignment["rev"], "author": author, "draft": draft},
    )


def test_pseudo_labels_are_preloaded_and_a_touched_box_becomes_human(home: Home) -> None:
    task_id = home.report(0)
    mine = home.client.get("/api/tasks", params={"annotator": "alice"}).json()["tasks"]
    assert mine == []
    assignment = _take(home, task_id, "alice")
    boxes = assignment["draft"]["boxes"]
    assert boxes and {b["source"] for b in boxes} == {"pseudo"}
    assert all(b["score"] is not None for b in boxes)
    assert [
        t["id"] for t in home.client.get("/api/tasks", params={"annotator": "alice"}).json()["tasks"]
    ] == [task_id]

    corrected = [dict(b) for b in boxes]
    corrected[0] = {**corrected[0], "box": {**corrected[0]["box"], "x": corrected[0]["box"]["x"] - 12}}
    corrected[0]["source"] = "human"
    saved = _save(home, assignment, {"boxes": corrected}, "alice")
    assert saved.status_code == 200, saved.text
    assert saved.json()["rev"] == 2

    submitted = home.client.post(
        f"/api/assignments/{assignment['id']}/submit", json={"rev": 2, "author": "alice"}
    ).json()
    assert submitted["status"] == "accepted" and submitted["review_reason"] is None
    task = home.client.get(f"/api/tasks/{task_id}").json()
    assert task["status"] == "done" and task["item"]["mode"] == "image"

    from cvcycle.db.models import Label

    db = open_database(home.settings)
    with db.read() as session:
        rows = (
            session.query(Label).filter(Label.frame_id == task["frame_id"], Label.deleted_v.is_(None)).all()
        )
        sources = sorted(r.source for r in rows)
    db.dispose()
    assert sources == sorted(b["source"] for b in corrected)


def test_a_stale_save_gets_409_and_overwrites_nothing(home: Home) -> None:
    task_id = home.report(1)
    alice = _take(home, task_id, "alice")
    bob = _take(home, task_id, "bob")  # no overlap: both work on the one assignment
    assert bob["id"] == alice["id"] and bob["rev"] == alice["rev"] == 1

    assert _save(home, alice, {"boxes": []}, "alice").status_code == 200
    stale = _save(home, bob, {"boxes": alice["draft"]["boxes"]}, "bob")
    assert stale.status_code == 409
    body = stale.json()
    assert "revision 2" in body["error"] and "alice" in body["error"] and body["hint"]
    theirs = home.client.get(f"/api/assignments/{alice['id']}").json()
    assert theirs["rev"] == 2 and theirs["draft"]["boxes"] == [] and theirs["updated_by"] == "alice"

    # Bob decides to keep his version on top of theirs: saving at their revision succeeds.
    kept = _save(home, {**bob, "rev": 2}, {"boxes": alice["draft"]["boxes"]}, "bob")
    assert kept.status_code == 200 and kept.json()["rev"] == 3


@pytest.mark.parametrize(
    ("box", "field"),
    [
        ({"x": 10, "y": 10, "w": -5, "h": 20}, "draft.boxes.0.box.w"),
        ({"x": 10, "y": 10, "w": 5, "h": 0}, "draft.boxes.0.box.h"),
        ({"x": 300, "y": 10, "w": 50, "h": 20}, "boxes.0.box"),
        ({"x": -20, "y": 10, "w": 5, "h": 20}, "boxes.0.box"),
    ],
)
def test_a_bad_box_gets_422_naming_the_field(home: Home, box: dict[str, float], field: str) -> None:
    assignment = _take(home, home.report(0), "alice")
    response = _save(home, assignment, {"boxes": [{"id": "b1", "cls": "person", "box": box}]}, "alice")
    assert response.status_code == 422
    assert field in response.json()["error"]
    assert home.client.get(f"/api/assignments/{assignment['id']}").json()["rev"] == 1


def test_unknown_ids_get_404_with_the_id(home: Home) -> None:
    for path in ("/api/tasks/987654", "/api/tasks/987654/agreement"):
        response = home.client.get(path)
        assert response.status_code == 404 and "987654" in response.json()["error"]
    response = home.client.post("/api/tasks/987654/assignments", json={"annotator": "a"})
    assert response.status_code == 404 and "task 987654" in response.json()["error"]
    response = home.client.put(
        "/api/assignments/555444/draft", json={"rev": 1, "author": "a", "draft": {"boxes": []}}
    )
    assert response.status_code == 404 and "555444" in response.json()["error"]
    response = home.client.get("/api/media/424242/frames/0.jpg")
    assert response.status_code == 404 and "424242" in response.json()["error"]


def test_video_task_writes_segments_and_interpolated_tracks(home: Home) -> None:
    created = home.client.post(
        "/api/tasks", json={"dataset": "home", "media_id": home.sample.media_id, "annotators": ["vera"]}
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["item"]["mode"] == "video" and task["item"]["frame_count"] == 20
    assignment = _take(home, task["id"], "vera")
    assert all(s["source"] == "import" for s in assignment["draft"]["segments"])
    draft = {
        "segments": [{"id": "s1", "cls": "fall", "start": 4, "end": 9}],
        "tracks": [
            {
                "id": "t1",
                "cls": "person",
                "keyframes": [
                    {"frame": 2, "box": {"x": 10, "y": 10, "w": 20, "h": 40}},
                    {"frame": 6, "box": {"x": 50, "y": 10, "w": 20, "h": 40}},
                ],
            }
        ],
    }
    saved = _save(home, assignment, draft, "vera")
    assert saved.status_code == 200, saved.text
    past_end = _save(
        home, saved.json(), {"segments": [{"id": "s1", "cls": "fall", "start": 4, "end": 20}]}, "vera"
    )
    assert past_end.status_code == 422 and "segments.0.end" in past_end.json()["error"]
    done = home.client.post(f"/api/assignments/{assignment['id']}/submit", json={"rev": 2, "author": "vera"})
    assert done.json()["status"] == "accepted"

    from sqlalchemy import select

    from cvcycle.db.models import Frame, Label, Segment

    db = open_database(home.settings)
    with db.read() as session:
        segments = session.execute(
            select(Segment.cls, Segment.start_frame, Segment.end_frame).where(
                Segment.media_id == home.sample.media_id,
                Segment.deleted_v.is_(None),
                Segment.author == "vera",
            )
        ).all()
        track = session.execute(
            select(Frame.index, Label.x, Label.attributes)
            .join(Frame, Frame.id == Label.frame_id)
            .where(Label.author == "vera", Label.deleted_v.is_(None))
            .order_by(Frame.index)
        ).all()
    db.dispose()
    assert segments == [("fall", 4, 9)]
    assert [(i, x) for i, x, _ in track] == [(2, 10), (3, 20), (4, 30), (5, 40), (6, 50)]
    assert [a["keyframe"] for _, _, a in track] == [True, False, False, False, True]


def test_overlap_review_shows_agreement_and_a_rejection_keeps_html_as_text(home: Home) -> None:
    frame_id = home.sample.frame_ids[3]
    task = home.client.post(
        "/api/tasks",
        json={"dataset": "home", "frame_id": frame_id, "annotators": ["ann", "ben"], "overlap": 2},
    ).json()
    extra = home.client.post(f"/api/tasks/{task['id']}/assignments", json={"annotator": "cid"})
    assert extra.status_code == 409 and "2 annotators" in extra.json()["error"]
    ann, ben = (_take(home, task["id"], name) for name in ("ann", "ben"))
    box = {"x": 10, "y": 10, "w": 40, "h": 80}
    _save(home, ann, {"boxes": [{"id": "a", "cls": "person", "box": box}]}, "ann")
    moved = {**box, "x": 30}  # IoU 1/3 with ann's box: no match
    _save(home, ben, {"boxes": [{"id": "b", "cls": "person", "box": moved}]}, "ben")
    for who, a in (("ann", ann), ("ben", ben)):
        r = home.client.post(f"/api/assignments/{a['id']}/submit", json={"rev": 2, "author": who})
        assert r.json()["status"] == "submitted" and r.json()["review_reason"] == "overlap"
    queue = home.client.get("/api/reviews").json()["items"]
    item = next(i for i in queue if i["task"]["id"] == task["id"])
    assert item["waiting_for"] == 0 and item["agreement"]["boxes_f1"] == 0.0

    comment = '<img src=x onerror="alert(1)"><b>boxes</b> are off'
    rejected = home.client.post(
        f"/api/assignments/{ann['id']}/review",
        json={"verdict": "reject", "reviewer": "rita", "comment": comment},
    ).json()
    assert rejected["status"] == "rejected" and rejected["reviews"][0]["comment"] == comment
    no_comment = home.client.post(
        f"/api/assignments/{ben['id']}/review", json={"verdict": "reject", "reviewer": "rita"}
    )
    assert no_comment.status_code == 422 and "comment" in no_comment.json()["error"]
    early = home.client.post(
        f"/api/assignments/{ben['id']}/review", json={"verdict": "accept", "reviewer": "rita"}
    )
    assert early.status_code == 409  # ann's work is back with her: agreement is not known yet

    again = home.client.get(f"/api/assignments/{ann['id']}").json()
    _save(home, again, {"boxes": [{"id": "a", "cls": "person", "box": moved}]}, "ann")
    home.client.post(f"/api/assignments/{ann['id']}/submit", json={"rev": again["rev"] + 1, "author": "ann"})
    assert home.client.get(f"/api/tasks/{task['id']}/agreement").json()["boxes_f1"] == 1.0
    accepted = home.client.post(
        f"/api/assignments/{ben['id']}/review", json={"verdict": "accept", "reviewer": "rita"}
    )
    assert accepted.json()["status"] == "accepted"
    assert home.client.get(f"/api/tasks/{task['id']}").json()["status"] == "done"


def test_spot_checks_send_the_configured_share_to_review(tmp_path: Path) -> None:
    for home in _home(tmp_path, spot_check_share=1.0):
        assignment = _take(home, home.report(0), "alice")
        submitted = home.client.post(
            f"/api/assignments/{assignment['id']}/submit", json={"rev": 1, "author": "alice"}
        ).json()
        assert submitted["status"] == "submitted" and submitted["review_reason"] == "spot_check"
        queue = home.client.get("/api/reviews").json()["items"]
        assert [i["task"]["id"] for i in queue] == [assignment["task_id"]]


def test_frames_are_jpeg_with_cache_headers(home: Home) -> None:
    media = home.client.get(f"/api/media/{home.sample.media_id}").json()
    assert media["frame_count"] == 20 and media["width"] == 320
    response = home.client.get(f"/api/media/{home.sample.media_id}/frames/7.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    assert "immutable" in response.headers["cache-control"]
    again = home.client.get(
        f"/api/media/{home.sample.media_id}/frames/7.jpg", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    past = home.client.get(f"/api/media/{home.sample.media_id}/frames/20.jpg")
    assert past.status_code == 404 and "frame 20" in past.json()["error"]


def test_frames_not_sampled_at_ingest_are_decoded_from_the_video(home: Home, tmp_path: Path) -> None:
    import numpy as np

    from cvcycle.data.ingest import ingest_file
    from cvcycle.media import decode_jpeg, write_video

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [np.full((48, 64, 3), colours[i % 3], np.uint8) for i in range(12)]
    path = tmp_path / "clip.mp4"
    write_video(frames, path, fps=10)
    db, store = open_database(home.settings), open_store(home.settings)
    result = ingest_file(db, store, "sparse", path, every=5)  # frames 0, 5, 10 are stored
    db.dispose()
    # While scrubbing the UI may take the keyframe instead (one decode); the header says which.
    near = home.client.get(f"/api/media/{result.media_id}/frames/7.jpg", params={"near": "keyframe"})
    assert near.status_code == 200 and near.headers["x-frame-index"] == "0"  # x264's one keyframe
    assert np.abs(decode_jpeg(near.content).mean(axis=(0, 1)) - colours[0]).max() < 12
    stored = home.client.get(f"/api/media/{result.media_id}/frames/5.jpg", params={"near": "keyframe"})
    assert stored.headers["x-frame-index"] == "5"  # a stored frame is exact anyway
    for index in (3, 4, 7, 11):
        response = home.client.get(f"/api/media/{result.media_id}/frames/{index}.jpg")
        assert response.status_code == 200, response.text
        pixels = decode_jpeg(response.content)
        assert pixels.shape == (48, 64, 3)
        assert np.abs(pixels.mean(axis=(0, 1)) - colours[index % 3]).max() < 12


def _frame_boxes(settings: Settings, frame_id: int) -> list[tuple[Any, ...]]:
    """The frame's visible boxes with what identifies their history: key, revision, author."""
    from sqlalchemy import select

    from cvcycle.db.models import Label

    db = open_database(settings)
    with db.read() as session:
        rows = session.execute(
            select(Label.key, Label.rev, Label.author, Label.cls, Label.x).where(
                Label.frame_id == frame_id, Label.deleted_v.is_(None)
            )
        ).all()
    db.dispose()
    return sorted(tuple(r) for r in rows)


def test_the_second_of_two_tasks_on_one_frame_gets_409_and_nothing_is_lost(tmp_path: Path) -> None:
    for home in _home(tmp_path, spot_check_share=1.0):  # every submission waits for a reviewer
        frame_id = home.sample.frame_ids[5]
        ids = []
        for _ in range(2):
            created = home.client.post("/api/tasks", json={"dataset": "home", "frame_id": frame_id})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        ann, bob = _take(home, ids[0], "ann"), _take(home, ids[1], "bob")
        box = {"id": "b1", "cls": "person", "box": {"x": 5, "y": 5, "w": 30, "h": 60}, "source": "human"}
        for who, a in (("ann", ann), ("bob", bob)):
            draft = {"boxes": [*a["draft"]["boxes"], {**box, "id": f"b-{who}"}]}
            assert _save(home, a, draft, who).status_code == 200
            r = home.client.post(f"/api/assignments/{a['id']}/submit", json={"rev": 2, "author": who})
            assert r.json()["status"] == "submitted", r.text

        before = _frame_boxes(home.settings, frame_id)
        accept = {"verdict": "accept", "reviewer": "rita"}
        first = home.client.post(f"/api/assignments/{ann['id']}/review", json=accept)
        assert first.status_code == 200 and first.json()["status"] == "accepted"
        accepted = _frame_boxes(home.settings, frame_id)
        # The boxes ann left alone keep their key, revision and author; hers is added.
        assert [b for b in accepted if b[2] != "ann"] == before and before
        assert [b[2:] for b in accepted if b[2] == "ann"] == [("ann", "person", 5)]

        second = home.client.post(f"/api/assignments/{bob['id']}/review", json=accept)
        assert second.status_code == 409
        body = second.json()
        assert set(body) == {"error", "hint"}
        assert f"frame {frame_id} of dataset 'home' changed" in body["error"] and "reopen" in body["hint"]
        assert _frame_boxes(home.settings, frame_id) == accepted  # no box lost or re-credited to bob
        assert home.client.get(f"/api/tasks/{ids[1]}").json()["status"] == "open"

        reopened = home.client.post(f"/api/tasks/{ids[1]}/reopen", json={"by": "rita"})
        assert reopened.status_code == 200, reopened.text
        again = home.client.get(f"/api/assignments/{bob['id']}").json()
        assert again["status"] == "open" and len(again["draft"]["boxes"]) == len(accepted)
