"""The feedback commands end to end through Typer's CliRunner, on a local app with register()."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from cvcycle.annotate.tasks import create_task
from cvcycle.cli import common, feedback, setup
from cvcycle.data.ingest import IngestResult
from cvcycle.db import Database
from cvcycle.db.models import Label

app = typer.Typer()
setup.register(app)
feedback.register(app)
runner = CliRunner()


def cv(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"cvcycle {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def cvj(*args: str, code: int = 0) -> Any:
    return json.loads(cv(*args, "--json", code=code))


def test_feedback_round_trip(home: Path, tmp_path: Path, medium: IngestResult, snapshot_b64) -> None:  # type: ignore[no-untyped-def]
    cv("init")
    person = {"cls": "person", "score": 0.9, "box": [4, 5, 20, 30]}
    lines = [
        {"id": "a", "source": "cam-1", "time": "2026-11-25T10:00:00Z", "model": "detector@1",
         "detections": [person], "frame": {"media_sha256": medium.sha256, "index": 0}},
        {"id": "b", "source": "cam-1", "time": "2026-11-25T10:01:00Z", "model": "detector@1",
         "detections": [], "frame": {"media_sha256": medium.sha256, "index": 1}},
        {"id": "c", "source": "cam-2", "time": "2026-11-25T10:02:00Z", "model": "detector@1",
         "detections": [person], "snapshot": snapshot_b64(2)},
    ]  # fmt: skip
    feed = tmp_path / "events.jsonl"
    feed.write_text("\n".join(json.dumps(x) for x in lines) + "\n{oops\n")

    bad = runner.invoke(app, ["events", "push", str(feed)])
    assert bad.exit_code == 2 and "kept 3 events" in bad.stdout
    assert "line 4: bad JSON" in bad.output
    again = cvj("events", "push", str(feed), code=2)
    assert (again["kept"], again["duplicates"], again["errors"][0]["line"]) == (0, 3, 4)
    feed.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert "kept 0 events, 3 already known" in cv("events", "push", str(feed))

    listed = cvj("events", "list", "--model", "detector@1")
    a, b, c = sorted(e["id"] for e in listed)
    assert [e["id"] for e in cvj("events", "list", "--source", "cam-2")] == [c]
    assert "snapshot" in cv("events", "list")
    assert cvj("report", str(a), "--type", "confirmed")["task_id"] is None
    false = cvj("report", str(c), "--type", "false_detection", "--operator", "olga", "--dataset", "fb")
    assert false["dataset"] == "fb" and false["task_id"] is not None

    (sampled,) = cvj("review", "sample", "--model", "detector@1", "--limit", "3", "--seed", "4")
    assert sampled["event_id"] == b
    assert cvj("review", "sample", "--model", "detector", "--seed", "4") == []
    missed = cv(
        "report", str(b), "--type", "missed_detection", "--box", "10,10,12,20,person", "--dataset", "fb"
    )
    assert f"missed_detection on event {b}, task" in missed

    err = runner.invoke(app, ["report", "77", "--type", "false_detection"])
    assert err.exit_code == 2 and "event 77 does not exist" in err.output
    err = runner.invoke(app, ["report", str(b), "--type", "missed_detection"])
    assert err.exit_code == 2 and "needs the box" in err.output

    tasks = cvj("tasks", "list", "--status", "open")
    assert [t["report_types"] for t in tasks] == [["false_detection"], ["missed_detection"]]
    assert "missed_detection" in cv("tasks", "list")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"cls": "person", "box": [10, 10, 12, 20]}]))
    done = cvj("tasks", "done", str(tasks[1]["id"]), "--labels", str(labels), "--operator", "anna")
    assert done["status"] == "done" and done["result"]["keys"]
    err = runner.invoke(app, ["tasks", "done", str(tasks[1]["id"]), "--labels", str(labels)])
    assert err.exit_code == 2 and "already done" in err.output
    assert "1 boxes written to fb" in cv("tasks", "done", str(tasks[0]["id"]), "--labels", str(labels))

    (row,) = cvj("stats", "--by", "model_version")
    assert (row["events"], row["confirmed"], row["false_detection"], row["missed_detection"]) == (3, 1, 1, 1)
    assert row["false_rate"] == 0.5 and row["missed_rate"] == 1 / 3
    table = cv("stats")
    assert "detector@1" in table and "cam-2" in table
    err = runner.invoke(app, ["stats", "--by", "week"])
    assert err.exit_code == 2 and "'week'" in err.output


def test_done_on_a_frame_that_another_task_changed_exits_2_with_one_line(
    home: Path, tmp_path: Path, db: Database, medium: IngestResult
) -> None:
    cv("init")
    frame = medium.frame_ids[0]
    first, second = (create_task(db, "prod", frame_id=frame).id for _ in range(2))
    anna, bo = tmp_path / "anna.json", tmp_path / "bo.json"
    anna.write_text(json.dumps([{"cls": "person", "box": [1, 1, 10, 10]}]))
    bo.write_text(json.dumps([{"cls": "car", "box": [20, 20, 10, 10]}]))
    assert "1 boxes written to prod" in cv(
        "tasks", "done", str(first), "--labels", str(anna), "--operator", "anna"
    )
    written = _frame_boxes(db, frame)

    err = runner.invoke(app, ["tasks", "done", str(second), "--labels", str(bo), "--operator", "bo"])
    assert err.exit_code == 2
    (line,) = [line for line in err.output.splitlines() if line.startswith("error:")]
    assert re.fullmatch(
        rf"error: task {second}: frame {frame} of dataset 'prod' changed since the work on it started "
        r"\(revision [0-9a-f]{12} -> [0-9a-f]{12}\)",
        line,
    )
    assert f"cvcycle tasks reopen {second}" in err.output
    assert _frame_boxes(db, frame) == written  # anna's box is hers, and not replaced

    assert f"task {second} reopened" in cv("tasks", "reopen", str(second), "--operator", "bo")
    both = tmp_path / "both.json"
    both.write_text(json.dumps([*json.loads(anna.read_text()), *json.loads(bo.read_text())]))
    result = cvj("tasks", "done", str(second), "--labels", str(both), "--operator", "bo")["result"]
    assert (result["kept"], result["added"]) == (1, 1)
    assert _frame_boxes(db, frame) == [*written, (result["keys"][1], 1, "bo", "car")]


def _frame_boxes(db: Database, frame_id: int) -> list[tuple[Any, ...]]:
    with db.read() as session:
        rows = session.execute(
            select(Label.key, Label.rev, Label.author, Label.cls).where(
                Label.frame_id == frame_id, Label.deleted_v.is_(None)
            )
        ).all()
    return sorted(tuple(r) for r in rows)


def test_push_of_hostile_lines_reports_each_without_a_traceback(
    home: Path, tmp_path: Path, medium: IngestResult
) -> None:
    cv("init")
    good = {"id": "ok", "source": "cam-1", "time": "2026-11-25T10:00:00Z", "model": "detector@1",
            "detections": [], "frame": {"media_sha256": medium.sha256, "index": 0}}  # fmt: skip
    feed = tmp_path / "events.jsonl"
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "[/]", "time": "0001-01-01T00:00:00+01:00"}),
        "[" * 100_000,
        json.dumps({**good, "source": "\ud800"}),
        json.dumps({**good, "frame": {"id": 2**64}}),
        '{"source": NaN}',
    ]
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["events", "push", str(feed)])
    assert result.exit_code == 2, result.output
    assert "kept 1 events" in result.stdout and "Traceback" not in result.output
    for line in range(2, 7):
        assert f"line {line}: " in result.output


HOSTILE = "[red]x[/red]\x1b[2J"
SHOWN = "[red]x[/red]\\x1b[2J"  # the markup as text, the ESC made visible


def test_lists_print_untrusted_text_literally(
    home: Path, tmp_path: Path, db: Database, medium: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Table cells unwrapped. The console is made once, on import, so its width is set here rather
    # than through COLUMNS (which it reads only when made, if other tests made it first).
    monkeypatch.setattr(common.console, "_width", 200)
    cv("init")
    event = {"id": "e", "source": HOSTILE, "time": "2026-11-25T10:00:00Z", "model": "detector@1",
             "detections": [{"cls": HOSTILE, "score": 0.9, "box": [4, 5, 20, 30]}],
             "frame": {"media_sha256": medium.sha256, "index": 0}}  # fmt: skip
    feed = tmp_path / "events.jsonl"
    feed.write_text(json.dumps(event) + "\n")
    cv("events", "push", str(feed))
    assert [e["source"] for e in cvj("events", "list")] == [HOSTILE]  # --json keeps the value as it is
    listed = cv("events", "list")
    assert "\x1b" not in listed
    assert listed.count(SHOWN) == 2  # the source and the class

    create_task(db, "prod", frame_id=medium.frame_ids[0], annotators=[HOSTILE])
    tasks = cv("tasks", "list")
    assert "\x1b" not in tasks and SHOWN in tasks
