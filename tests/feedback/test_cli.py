"""The feedback commands end to end through Typer's CliRunner, on a local app with register()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from cvcycle.cli import feedback, setup
from cvcycle.data.ingest import IngestResult

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
