"""``cvcycle demo``: the whole loop on the embedded default, every number measured.

v1 is trained on day scenes without dogs, exported, verified, published and served; a production
stream of night scenes with dogs goes through the served model and becomes events; simulated
operators (``operators.py``) confirm detections, report false and inaccurate ones and review
sparsely sampled empty frames for missed objects; their reports become annotation tasks, the
finished tasks become labels, the labels version 2 of the dataset; v2 is trained on it and gated
against v1 (the 2x2 table); if it passes it is exported, verified, published and the server picks
it up; the same kind of stream runs again and the operators' false and missed rates before and
after are compared.

Each stage's wall time is recorded with its kind, so the JSON separates the compute (training,
evaluation, inference) from the platform's own work and from rendering the synthetic world.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cvcycle.boxes import Box
from cvcycle.data.selection import resolve_selection
from cvcycle.data.snapshot import iter_boxes, snapshot_frames
from cvcycle.data.synthetic import add_synthetic_clips
from cvcycle.data.versions import commit_version
from cvcycle.db import Database, open_database
from cvcycle.home import init_home
from cvcycle.media import decode_jpeg
from cvcycle.records import to_jsonable
from cvcycle.refs import DatasetRef, ModelRef, format_ref
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store
from cvcycle.synth.operators import judge

KINDS = ("training", "evaluation", "inference", "platform", "simulation")
MODEL = "detector"
GATE_CRITERIA = """\
# The demo's regression gate: keep the old scenes, win on the new ones.
threshold: {threshold}
bootstrap: 200
old_slice: test
corner_cases: [lighting=night]
criteria:
  - {{metric: map50, slice: old, rule: "new >= old - 0.05"}}
  - {{metric: map50, slice: diff, rule: "new >= old + 0.05"}}
  - {{metric: recall, slice: diff, rule: "new >= old"}}
  - {{metric: fp_per_1k_all_frames, slice: diff, rule: "new <= old"}}
"""


@dataclass
class DemoOptions:
    # Many short clips rather than a few long ones: a detector generalises to an unseen room from
    # many rooms, not from many frames of the same room.
    day_clips: int = 24
    stream_clips: int = 10
    clip_seconds: float = 3.0
    # Some stream clips show dogs in an empty room: every detection there is false, so false
    # positives per frame without people are measured, as on a real camera at night.
    stream_empty_share: float = 0.2
    seed: int = 1
    # A fixed number of epochs, not a time budget: the same seed then gives the same models on a
    # busy machine as on an idle one.
    # 14 + 8 epochs: the whole demo took 155 s on 2 cores of a Zen 3 without AVX-512, and the gate
    # passed on every criterion (with 10 + 6, 125 s, v2 made more false positives on the new data).
    train_epochs: int = 14
    # v2 starts from v1's weights (fine-tuning), so it needs fewer epochs and keeps what v1 knew.
    finetune_epochs: int = 8
    train_seconds: float | None = None  # an optional cap on top
    # The demo's recipe was tuned at batch 8: at the default 16, 20 + 10 epochs took 5 s longer
    # and v2 lost 0.03 mAP50 on the old data (still within the gate's criteria).
    batch_size: int = 8
    review_rate: float = 0.5  # share of empty frames the operators review for missed objects
    stream_every: int = 2  # the camera sends every N-th frame as an event
    # The gate's criteria file (YAML; ``{threshold}`` is filled in). Tests that run the loop on a
    # tiny budget pass criteria whose verdict they know, to check both branches unconditionally.
    gate_criteria: str = GATE_CRITERIA


@dataclass
class Stage:
    name: str
    kind: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoReport:
    stages: list[Stage] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    rates: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    deployed: bool = False

    def totals(self) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for stage in self.stages:
            sums[stage.kind] += stage.seconds
        out = {kind: round(sums[kind], 2) for kind in KINDS}
        out["compute"] = round(sums["training"] + sums["evaluation"] + sums["inference"], 2)
        out["everything_but_compute"] = round(sums["platform"], 2)
        out["total"] = round(sum(sums.values()), 2)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [
                {"name": s.name, "kind": s.kind, "seconds": round(s.seconds, 3), **s.detail}
                for s in self.stages
            ],
            "totals_s": self.totals(),
            "models": self.models,
            "gate": self.gate,
            "deployed": self.deployed,
            "rates": self.rates,
        }


class Stages:
    """Times each stage and tells the caller as it goes."""

    def __init__(self, report: DemoReport, on_stage: Callable[[Stage], None] | None) -> None:
        self.report = report
        self.on_stage = on_stage

    @contextmanager
    def __call__(self, name: str, kind: str) -> Iterator[dict[str, Any]]:
        detail: dict[str, Any] = {}
        start = time.perf_counter()
        yield detail
        stage = Stage(name, kind, time.perf_counter() - start, detail)
        self.report.stages.append(stage)
        if self.on_stage:
            self.on_stage(stage)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``cvcycle serve`` on the demo's repository, in a background thread of this process."""

    def __init__(self, repo: Path, poll_interval: float = 0.25) -> None:
        import uvicorn

        from cvcycle.serve.app import create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(repo, poll_interval), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the inference server at {self.url} did not become ready in 30 s")

    def wait_for_version(self, model: str, version: int, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/v2/models/{model}/versions/{version}/ready", timeout=1)
            if r.status_code == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{model} version {version} was not served within {timeout:.0f} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _truth_by_frame(db: Database, dataset: str) -> dict[int, list[Box]]:
    truth: dict[int, list[Box]] = defaultdict(list)
    with db.read() as session:
        for box in iter_boxes(session, resolve_selection(session, DatasetRef(dataset))):
            truth[box.frame_id].append(Box(box.cls, box.x, box.y, box.w, box.h))
    return truth


def _stream(
    db: Database,
    store: BlobStore,
    server: _Server,
    name: str,
    model_version: int,
    seed: int,
    options: DemoOptions,
    stages: Stages,
    threshold: float,
) -> dict[str, Any]:
    """Render a production stream, run it through the served model, push events, let operators review."""
    from cvcycle.feedback.events import push_events
    from cvcycle.feedback.reports import report_event, sample_review_frames
    from cvcycle.serve.client import ServedPredictor

    with stages(f"{name}: render the production stream", "simulation") as d:
        add_synthetic_clips(
            db,
            store,
            name,
            clips=options.stream_clips,
            lighting="night",
            dogs=True,
            seed=seed,
            seconds=options.clip_seconds,
            empty_share=options.stream_empty_share,
        )
        with db.read() as session:
            frames = snapshot_frames(session, resolve_selection(session, DatasetRef(name)))
        frames = [f for f in frames if f.index % options.stream_every == 0]
        d["frames"] = len(frames)
    with stages(f"{name}: served model finds objects", "inference") as d:
        predictor = ServedPredictor(server.url, MODEL)
        detections = []
        for start in range(0, len(frames), 8):
            batch = frames[start : start + 8]
            images = [decode_jpeg(store.get_bytes(f.blob_key, f.blob_size)) for f in batch]
            detections.extend(predictor.predict(images, threshold=threshold))
        d["served_by"] = format_ref(MODEL, predictor.last_version)
        d["detections"] = sum(len(x) for x in detections)
    with stages(f"{name}: events pushed", "platform") as d:
        t0 = datetime(2026, 11, 2 if model_version == 1 else 3, 8, 0, tzinfo=UTC)
        lines = [
            json.dumps(
                {
                    "id": f"{name}-{f.media_sha256[:12]}-{f.index}",
                    "source": f"cam-{f.media_id % 3 + 1}",
                    "time": (t0 + timedelta(seconds=f.timestamp_s + 60 * f.media_id)).isoformat(),
                    "model": format_ref(MODEL, model_version),
                    "detections": det.to_json(),
                    "frame": {"media_sha256": f.media_sha256, "index": f.index},
                }
            )
            for f, det in zip(frames, detections, strict=True)
        ]
        pushed = push_events(db, store, lines)
        d["events"] = pushed.kept
    truth = _truth_by_frame(db, name)
    with stages(f"{name}: operators review", "platform") as d:
        counts: dict[str, int] = defaultdict(int)
        event_of_frame = dict(zip((f.frame_id for f in frames), pushed.event_ids, strict=True))
        by_event = {event_of_frame[f.frame_id]: (f, det) for f, det in zip(frames, detections, strict=True)}
        for event_id, (frame, det) in by_event.items():
            if not len(det):
                continue
            verdict = judge(det.to_json(), truth.get(frame.frame_id, []))
            for i in verdict.confirmed:
                report_event(db, event_id, "confirmed", detection=i, operator="operator-1", dataset="home")
            for i in verdict.false:
                report_event(
                    db, event_id, "false_detection", detection=i, operator="operator-1", dataset="home"
                )
            for i, t in verdict.inaccurate:
                report_event(
                    db,
                    event_id,
                    "inaccurate_detection",
                    box=t,
                    detection=i,
                    operator="operator-1",
                    dataset="home",
                )
            for t in verdict.missed:
                report_event(db, event_id, "missed_detection", box=t, operator="operator-1", dataset="home")
            counts["confirmed"] += len(verdict.confirmed)
            counts["false_detection"] += len(verdict.false)
            counts["inaccurate_detection"] += len(verdict.inaccurate)
            counts["missed_detection"] += len(verdict.missed)
        empty = sum(1 for _, det in by_event.values() if not len(det))
        sampled = sample_review_frames(
            db,
            ModelRef(MODEL, model_version),
            limit=max(empty, 1),
            rate=options.review_rate,
            seed=options.seed,
        )
        for sample in sampled:
            frame, _ = by_event[sample.event_id]
            objects = truth.get(frame.frame_id, [])
            if not objects:
                report_event(db, sample.event_id, "confirmed", operator="operator-2", dataset="home")
            for t in objects:
                report_event(
                    db, sample.event_id, "missed_detection", box=t, operator="operator-2", dataset="home"
                )
                counts["missed_detection"] += 1
        d.update(counts)
        d["empty_frames_sampled"] = len(sampled)
    return {"truth": truth}


def _complete_tasks(db: Database, truth: dict[int, list[Box]]) -> int:
    from cvcycle.annotate.tasks import complete_task, list_tasks

    done = 0
    for task in list_tasks(db, status="open"):
        labels = [{"cls": t.cls, "box": [t.x, t.y, t.w, t.h]} for t in truth.get(task.frame_id, [])]
        complete_task(db, task.id, labels, operator="annotator-1")
        done += 1
    return done


def _rates(db: Database) -> dict[str, Any]:
    from cvcycle.feedback.stats import feedback_stats

    rows = feedback_stats(db, group_by=("model_version",), model=MODEL)
    # Objects on the reviewed frames: detections that were right (or close), plus the missed ones.
    objects = {
        row.model: row.detections_reviewed - row.false_detection + row.missed_detection for row in rows
    }
    return {
        row.model or "?": {
            "missed_share": row.missed_detection / objects[row.model] if objects[row.model] else None,
            "events": row.events,
            "detections_reviewed": row.detections_reviewed,
            "frames_reviewed": row.frames_reviewed,
            "false_detection": row.false_detection,
            "inaccurate_detection": row.inaccurate_detection,
            "missed_detection": row.missed_detection,
            "false_rate": row.false_rate,
            "inaccurate_rate": row.inaccurate_rate,
            "missed_rate": row.missed_rate,
        }
        for row in rows
    }


def _train(
    db: Database,
    store: BlobStore,
    settings: Settings,
    dataset: str,
    options: DemoOptions,
    init_from: str | None = None,
) -> dict[str, Any]:
    """Train the built-in detector on ``dataset`` (train/val slices); returns the run's summary."""
    from cvcycle.train.service import train_model

    sets: dict[str, Any] = {
        "epochs": options.finetune_epochs if init_from else options.train_epochs,
        "max_seconds": options.train_seconds,
        "seed": options.seed,
        "batch_size": options.batch_size,
    }
    if init_from:
        sets["init_from"] = init_from
    result = train_model(
        db, store, settings, dataset=dataset, train_slice="train", val_slice="val", sets=sets
    )
    return {**to_jsonable(result), "init_from": init_from}


def run_demo(
    settings: Settings, options: DemoOptions | None = None, on_stage: Callable[[Stage], None] | None = None
) -> DemoReport:
    """Run the whole loop in ``settings.home`` (which should be empty) and measure every stage."""
    from cvcycle.evaluate.gate import gate_models, parse_criteria
    from cvcycle.export.service import export_model_version
    from cvcycle.registry.publish import publish_model_version
    from cvcycle.registry.versions import PRODUCTION, resolve_model_ref, set_alias

    options = options or DemoOptions()
    report = DemoReport()
    stages = Stages(report, on_stage)
    with stages("init home", "platform") as d:
        d.update(to_jsonable(init_home(settings)))
        db, store = open_database(settings), open_store(settings)
    repo = settings.model_repository_dir
    with stages("render v1 data: day scenes, no dogs", "simulation") as d:
        synth = add_synthetic_clips(
            db,
            store,
            "home",
            clips=options.day_clips,
            lighting="day",
            seed=options.seed,
            seconds=options.clip_seconds,
        )
        d["boxes"] = synth.boxes
    with stages("commit home@1", "platform") as d, db.write() as session:
        d["version"] = commit_version(session, "home", "day scenes, no dogs").version
    with stages("train detector@1 on home@1", "training") as d:
        v1 = _train(db, store, settings, "home@1", options)
        d.update(v1)
    with stages("detector@1 -> production", "platform"), db.write() as session:
        set_alias(session, MODEL, PRODUCTION, 1, reason="first model")
    with stages("export + verify detector@1", "evaluation") as d:
        d["verification"] = to_jsonable(export_model_version(db, store, f"{MODEL}@1"))
    with stages("publish detector@1, start the server", "platform") as d:
        d["published"] = to_jsonable(publish_model_version(db, store, f"{MODEL}@1", repo))
        server = _Server(repo)
        server.start()
        server.wait_for_version(MODEL, 1)
        d["url"] = server.url
    try:
        with db.read() as session:
            threshold = float(resolve_model_ref(session, f"{MODEL}@1").config.get("score_threshold", 0.3))
        before = _stream(db, store, server, "stream-1", 1, options.seed + 100, options, stages, threshold)
        with stages("annotators finish the tasks", "platform") as d:
            d["tasks"] = _complete_tasks(db, before["truth"])
        with stages("commit home@2", "platform") as d:
            with db.write() as session:
                info = commit_version(session, "home", "operator feedback on night scenes with dogs")
            d["version"], d["change"] = info.version, info.stats["change"]
        with stages("train detector@2 on home@2, starting from detector@1", "training") as d:
            v2 = _train(db, store, settings, "home@2", options, init_from=f"{MODEL}@1")
            d.update(v2)
        with stages("gate detector@2 against detector:production", "evaluation") as d:
            criteria = parse_criteria(options.gate_criteria.format(threshold=threshold), source="demo gate")
            gate = gate_models(db, store, f"{MODEL}@2", f"{MODEL}:production", criteria)
            gate.write(settings.home / "gate")
            report.gate = gate.to_json()
            d["passed"] = gate.passed
        served = 1
        if gate.passed:
            with stages("export + verify detector@2", "evaluation") as d:
                d["verification"] = to_jsonable(export_model_version(db, store, f"{MODEL}@2"))
            with stages("publish detector@2 -> production, server swaps", "platform") as d:
                d["published"] = to_jsonable(publish_model_version(db, store, f"{MODEL}@2", repo))
                with db.write() as session:
                    set_alias(session, MODEL, PRODUCTION, 2, reason="passed the gate")
                server.wait_for_version(MODEL, 2)
            served = 2
            report.deployed = True
        _stream(db, store, server, "stream-2", served, options.seed + 200, options, stages, threshold)
        with stages("operator statistics", "platform"):
            report.rates = _rates(db)
    finally:
        server.stop()
        db.dispose()
    report.models = {"v1": v1, "v2": v2, "gate_markdown": str(settings.home / "gate" / "gate-report.md")}
    return report
