"""The feedback loop's commands: ``events push``, ``report``, ``review sample``, ``tasks``, ``stats``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cvcycle.annotate.records import TASK_STATUSES
from cvcycle.annotate.tasks import complete_task, list_tasks, reopen_task
from cvcycle.cli.common import (
    JsonOption,
    console,
    database,
    err_console,
    handle_errors,
    plain,
    print_json,
    store,
)
from cvcycle.feedback.events import list_events, push_events
from cvcycle.feedback.reports import (
    DEFAULT_DATASET,
    REPORT_TYPES,
    parse_box,
    report_event,
    sample_review_frames,
)
from cvcycle.feedback.stats import DEFAULT_GROUP_BY, GROUP_KEYS, feedback_stats
from cvcycle.registry.versions import MODEL_FILTER_HELP


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@handle_errors
def push(
    path: Path = typer.Argument(..., help="A JSON Lines file of events."),
    as_json: bool = JsonOption,
) -> None:
    """Store the events of a JSONL file. Bad lines are reported (exit 2); the good ones are kept."""
    result = push_events(database(), store(), path)
    if as_json:
        print_json(result)
    else:
        console.print(f"kept {result.kept} events, {result.duplicates} already known", highlight=False)
        for error in result.errors:
            # A reason quotes the line, which may hold markup ("[/]") or escape codes.
            err_console.print(f"[red]{plain(error)}[/]", highlight=False)
    if not result.ok:
        raise typer.Exit(2)


@handle_errors
def events_list(
    model: str | None = typer.Option(None, "--model", help=MODEL_FILTER_HELP),
    source: str | None = typer.Option(None, "--source", help="Only this source."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """The newest events, with their ids for `cvcycle report`."""
    events = list_events(database(), model=model, source=source, limit=limit)
    if as_json:
        print_json(events)
        return
    table = Table("event", "time", "source", "model", "detections", "image")
    for e in events:
        image = f"frame {e.frame_id}" if e.snapshot_key is None else "snapshot"
        table.add_row(
            str(e.id),
            e.time.strftime("%Y-%m-%d %H:%M:%S"),
            plain(e.source),
            plain(e.model),
            plain(", ".join(str(d["cls"]) for d in e.detections) or "-"),
            image,
        )
    console.print(table)


@handle_errors
def sample(
    model: str = typer.Option(..., "--model", help=MODEL_FILTER_HELP),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many frames."),
    rate: float = typer.Option(1.0, "--rate", help="Share of empty frames eligible, in (0, 1]."),
    min_gap: float = typer.Option(0.0, "--min-gap", help="Seconds between samples of one source."),
    seed: int = typer.Option(0, "--seed", help="The same seed draws the same frames."),
    as_json: bool = JsonOption,
) -> None:
    """Draw frames where the model saw nothing, for operators to check for missed objects."""
    picked = sample_review_frames(database(), model, limit=limit, rate=rate, min_gap_s=min_gap, seed=seed)
    if as_json:
        print_json(picked)
        return
    table = Table("event", "source", "time", "image")
    for p in picked:
        table.add_row(str(p.event_id), plain(p.source), p.time.isoformat(), plain(p.image_key))
    console.print(table)
    console.print(f"{len(picked)} frames sampled for review", highlight=False)


@handle_errors
def tasks_list(
    status: str | None = typer.Option(None, "--status", help=f"One of {', '.join(TASK_STATUSES)}."),
    assignee: str | None = typer.Option(
        None, "--assignee", help="Only this person's tasks (assigned to them, or holding their assignment)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Annotation tasks, oldest first."""
    tasks = list_tasks(database(), status=status, annotator=assignee)
    if as_json:
        print_json(tasks)
        return
    table = Table("task", "status", "dataset", "frame", "events", "reports", "assignee")
    for t in tasks:
        table.add_row(
            str(t.id),
            t.status,
            plain(t.dataset),
            str(t.frame_id),
            ",".join(map(str, t.event_ids)),
            plain(",".join(t.report_types)),
            plain(t.assignee or ""),
        )
    console.print(table)


@handle_errors
def tasks_done(
    task: int = typer.Argument(..., help="Task id."),
    labels: Path = typer.Option(
        ..., "--labels", help="JSON: [{cls, box: [x, y, w, h]}], {labels: [...]} or one-image COCO."
    ),
    operator: str = typer.Option("", "--operator", help="Who annotated."),
    as_json: bool = JsonOption,
) -> None:
    """Write the labels into the task's frame in the working copy (replacing its boxes); close the task.

    Refused (exit 2, nothing written) if the frame changed since the task was opened: see `tasks reopen`.
    """
    record = complete_task(database(), task, labels, operator=operator)
    if as_json:
        print_json(record)
        return
    result = record.result or {}
    console.print(
        f"task {record.id} done: {len(result.get('keys', []))} boxes written to {plain(record.dataset)} "
        f"(frame {record.frame_id}, {result.get('replaced', 0)} replaced, "
        f"{result.get('kept', 0)} kept as they were)",
        highlight=False,
    )


@handle_errors
def tasks_reopen(
    task: int = typer.Argument(..., help="Task id."),
    operator: str = typer.Option(..., "--operator", help="Who reopens it."),
    as_json: bool = JsonOption,
) -> None:
    """Restart an open task from its frame's current boxes, after its work was refused on a changed frame."""
    record = reopen_task(database(), task, operator)
    if as_json:
        print_json(record)
        return
    console.print(
        f"task {record.id} reopened on frame {record.frame_id} of {plain(record.dataset)} "
        f"(revision {record.base_revision or '-'})",
        highlight=False,
    )


@handle_errors
def report(
    event_id: int = typer.Argument(..., help="Event id."),
    type: str = typer.Option(..., "--type", help=" | ".join(REPORT_TYPES)),
    box: str | None = typer.Option(None, "--box", help="x,y,w,h,class of the missed or right box."),
    detection: int | None = typer.Option(None, "--detection", help="Index of the detection judged."),
    operator: str = typer.Option("", "--operator", help="Who reports."),
    comment: str = typer.Option("", "--comment", help="Free text."),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset the task's frame goes to."),
    as_json: bool = JsonOption,
) -> None:
    """Record a verdict on an event; anything but `confirmed` opens an annotation task."""
    record = report_event(
        database(),
        event_id,
        type,
        box=parse_box(box) if box is not None else None,
        detection=detection,
        operator=operator,
        comment=comment,
        dataset=dataset,
    )
    if as_json:
        print_json(record)
        return
    task = f", task {record.task_id} in {plain(record.dataset)}" if record.task_id is not None else ""
    console.print(f"report {record.id}: {record.type} on event {event_id}{task}", highlight=False)


@handle_errors
def stats(
    by: str = typer.Option(
        ",".join(DEFAULT_GROUP_BY), "--by", help=f"Comma-separated, from {', '.join(GROUP_KEYS)}."
    ),
    model: str | None = typer.Option(None, "--model", help=MODEL_FILTER_HELP),
    as_json: bool = JsonOption,
) -> None:
    """False, inaccurate and missed detection counts and rates per model version, source and day."""
    rows = feedback_stats(database(), by, model=model)
    if as_json:
        print_json(rows)
        return
    # Two lines a group rather than a table: eleven columns do not fit an 80-column terminal.
    for r in rows:
        group = plain("  ".join(v for v in (r.model, r.source, r.day) if v) or "all events")
        console.print(f"[bold]{group}[/]", highlight=False)
        console.print(
            f"  events {r.events}  frames reviewed {r.frames_reviewed}  "
            f"detections reviewed {r.detections_reviewed} (confirmed {r.confirmed})",
            highlight=False,
        )
        console.print(
            f"  false {r.false_detection} (rate {_rate(r.false_rate)})  "
            f"inaccurate {r.inaccurate_detection} (rate {_rate(r.inaccurate_rate)})  "
            f"missed {r.missed_detection} ({_rate(r.missed_rate)} per frame)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    events = typer.Typer(no_args_is_help=True)
    events.command("push")(push)
    events.command("list")(events_list)
    app.add_typer(events, name="events", help="Events emitted by models in production.")
    review = typer.Typer(no_args_is_help=True)
    review.command("sample")(sample)
    app.add_typer(review, name="review", help="Frames for operators to review.")
    tasks = typer.Typer(no_args_is_help=True)
    tasks.command("list")(tasks_list)
    tasks.command("done")(tasks_done)
    tasks.command("reopen")(tasks_reopen)
    app.add_typer(tasks, name="tasks", help="Annotation tasks opened by reports.")
    app.command()(report)
    app.command()(stats)
