"""The built-in detector on the synthetic world: training time and validation mAP on 2 CPU cores.

Builds a fresh home in a temporary directory, renders day clips of the synthetic world into
``home`` and commits ``home@1``, trains ``detector@1`` through the real training service (data
from the Parquet manifest, MLflow tracking, checkpoint in the blob store) with a time budget, then
loads it from the registry and scores it on the ``val`` split (and ``test``) with faster-coco-eval,
from COCO dictionaries built here. Prints the training seconds, mAP@0.5 and mAP@[.5:.95].

    .venv/bin/python bench/detector.py                      # 40 day clips of 3 s, seed 1, 60 s, 2 threads
    .venv/bin/python bench/detector.py --seeds 1 2 3 --set max_seconds=30
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_coco_eval import COCO, COCOeval_faster

from cvcycle.data.datasets import resolve_ref
from cvcycle.data.snapshot import iter_boxes, snapshot_frames
from cvcycle.data.synthetic import add_synthetic_clips
from cvcycle.data.versions import commit_version
from cvcycle.db import Database, open_database
from cvcycle.db.models import Run
from cvcycle.home import init_home
from cvcycle.media import decode_jpeg
from cvcycle.refs import DatasetRef
from cvcycle.registry.loading import load_model
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store
from cvcycle.train.service import train_model

GOAL_MAP50 = 0.7


def coco_scores(db: Database, store: BlobStore, model_ref: str, slice_name: str) -> dict[str, Any]:
    """COCO mAP of a registered model on a slice of home@1, evaluated by faster-coco-eval."""
    model = load_model(db, store, model_ref)
    with db.read() as session:
        ref = resolve_ref(session, DatasetRef("home", 1))
        frames = snapshot_frames(session, ref, slice_name)
        boxes = list(iter_boxes(session, ref, slice_name))
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(model.classes)]
    category = {name: i + 1 for i, name in enumerate(model.classes)}
    image_id = {f.frame_id: i + 1 for i, f in enumerate(frames)}
    images = [{"id": image_id[f.frame_id], "width": f.width, "height": f.height} for f in frames]
    annotations = [
        {
            "id": n + 1,
            "image_id": image_id[b.frame_id],
            "category_id": category[b.cls],
            "bbox": [b.x, b.y, b.w, b.h],
            "area": b.w * b.h,
            "iscrowd": 0,
        }
        for n, b in enumerate(boxes)
    ]
    results = []
    started = time.perf_counter()
    for start in range(0, len(frames), 32):
        chunk = frames[start : start + 32]
        pixels = [decode_jpeg(store.get_bytes(f.blob_key, f.blob_size)) for f in chunk]
        for frame, found in zip(chunk, model.predict(pixels, threshold=0.0), strict=True):
            for item in found.to_json():
                results.append(
                    {
                        "image_id": image_id[frame.frame_id],
                        "category_id": category[item["cls"]],
                        "bbox": item["box"],
                        "score": item["score"],
                    }
                )
    predict_seconds = time.perf_counter() - started
    truth = COCO()
    truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        evaluation = COCOeval_faster(
            truth, truth.loadRes(results), iouType="bbox", print_function=lambda *_: None
        )
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    per_class = {}
    for k, name in enumerate(model.classes):
        precision = evaluation.eval["precision"][0, :, k, 0, -1]  # IoU 0.5, all areas, 100 detections
        valid = precision[precision > -1]
        per_class[name] = round(float(valid.mean()), 4) if valid.size else None
    return {
        "slice": slice_name,
        "frames": len(frames),
        "boxes": len(annotations),
        "map50": round(float(evaluation.stats[1]), 4),
        "map": round(float(evaluation.stats[0]), 4),
        "ap50_per_class": per_class,
        "predict_seconds": round(predict_seconds, 2),
    }


def run(clips: int, seconds: float, seed: int, sets: list[str], root: Path) -> dict[str, Any]:
    settings = Settings(home=root / f"home-{clips}-{seed}", db_url=None, store_url=None, tracking_uri=None)
    init_home(settings)
    db, store = open_database(settings), open_store(settings)
    started = time.perf_counter()
    synth = add_synthetic_clips(db, store, "home", clips=clips, lighting="day", seed=seed, seconds=seconds)
    with db.write() as session:
        commit_version(session, "home", f"{clips} day clips")
    data_seconds = time.perf_counter() - started
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = train_model(db, store, settings, dataset="home@1", sets=sets)
    service_seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    with db.read() as session:
        run_row = session.get(Run, result.run_id)
        history = list(run_row.history) if run_row is not None else []
    # The first epoch whose validation mAP50 (faster-coco-eval, measured by the training loop on
    # the averaged weights) reached the goal, and when.
    reached = next((h for h in history if h.get("val_map50", 0.0) >= GOAL_MAP50), None)
    splits = {c["split"]: 0 for c in synth.clips}
    for c in synth.clips:
        splits[c["split"]] += 1
    return {
        "clips": clips,
        "seed": seed,
        "clips_per_split": splits,
        "data_seconds": round(data_seconds, 1),
        "training_seconds": result.metrics["seconds"],
        "service_seconds": round(service_seconds, 1),
        "service_cpu_seconds": round(cpu, 1),
        "epochs": result.metrics["epochs"],
        "steps": result.metrics["steps"],
        "best_epoch": result.metrics["best_epoch"],
        "history": [
            {k: round(h[k], 4) for k in ("epoch", "seconds", "val_map50", "train_loss") if k in h}
            for h in history
        ],
        "seconds_to_goal": reached["seconds"] if reached else None,
        "epoch_to_goal": reached["epoch"] if reached else None,
        "val": coco_scores(db, store, result.ref, "val"),
        "test": coco_scores(db, store, result.ref, "test"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="Day clips to render (320x240, 10 fps).")
    parser.add_argument("--seconds", type=float, default=3.0, help="Length of each clip.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="World seeds; one run per seed.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 cores).")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="Training config KEY=VALUE.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    figures = []
    with tempfile.TemporaryDirectory(prefix="cvcycle-bench-") as tmp:
        for seed in args.seeds:
            result = run(args.clips, args.seconds, seed, args.sets, Path(tmp))
            figures.append(result)
            if not args.json:
                val, test = result["val"], result["test"]
                print(
                    f"seed {seed}: {args.clips} clips {result['clips_per_split']}, trained "
                    f"{result['training_seconds']:.1f} s ({result['epochs']:.0f} epochs, "
                    f"{result['steps']:.0f} steps, "
                    f"best {result['best_epoch']:.0f}; run {result['service_seconds']:.1f} s wall, "
                    f"{result['service_cpu_seconds']:.1f} s CPU) | val mAP50 {val['map50']:.3f} "
                    f"mAP {val['map']:.3f} {val['ap50_per_class']} | test mAP50 {test['map50']:.3f} "
                    f"mAP {test['map']:.3f}",
                    flush=True,
                )
                goal = result["seconds_to_goal"]
                print(
                    f"  val mAP50 >= {GOAL_MAP50} "
                    + (
                        f"after {goal:.1f} s of training (epoch {result['epoch_to_goal']:.0f})"
                        if goal is not None
                        else "not reached"
                    )
                    + "; per epoch: "
                    + ", ".join(
                        f"{h['seconds']:.0f}s "
                        + (f"{h['val_map50']:.3f}" if "val_map50" in h else "-")  # not validated
                        for h in result["history"]
                    ),
                    flush=True,
                )
    if args.json:
        print(json.dumps(figures, indent=2))
    elif len(figures) > 1:
        val50 = np.array([f["val"]["map50"] for f in figures])
        print(f"val mAP50 over {len(figures)} seeds: mean {val50.mean():.3f}, min {val50.min():.3f}")


if __name__ == "__main__":
    main()
