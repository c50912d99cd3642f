"""Pseudo-labels: the production model's boxes on a frame that nobody has labelled yet.

For a task that an operator's report opened, the boxes the model in production emitted with the
event are the pseudo-labels (see ``assignments._initial_draft``). For any other unlabelled frame
the current ``production`` version of the model is run on the frame here: loaded once per process
and version and kept, so only the first task after a deployment pays for loading it. A model that
cannot be loaded (no checkpoint, a damaged one) gives no pseudo-labels rather than no task.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import and_, select

from cvcycle.boxes import Box, clip_box
from cvcycle.db.engine import Database
from cvcycle.db.models import Frame, ModelAlias, ModelVersion
from cvcycle.errors import CvcycleError
from cvcycle.media import decode_jpeg
from cvcycle.refs import ModelRef
from cvcycle.registry.versions import PRODUCTION
from cvcycle.store import BlobStore

log = logging.getLogger(__name__)

_loaded: dict[tuple[str, int, str], Any] = {}
_lock = threading.Lock()


def production_model(db: Database) -> tuple[str, int, str] | None:
    """``(name, version, checkpoint key)`` of the version ``production`` points at, if it has a
    checkpoint (the first model by name if several have a production version)."""
    with db.read() as session:
        row = session.execute(
            select(ModelVersion.name, ModelVersion.version, ModelVersion.artifacts)
            .join(
                ModelAlias,
                and_(ModelAlias.name == ModelVersion.name, ModelAlias.version == ModelVersion.version),
            )
            .where(ModelAlias.alias == PRODUCTION)
            .order_by(ModelVersion.name)
            .limit(1)
        ).first()
    if row is None:
        return None
    checkpoint = (row[2] or {}).get("checkpoint")
    if not isinstance(checkpoint, dict) or not checkpoint.get("key"):
        return None
    return str(row[0]), int(row[1]), str(checkpoint["key"])


def _model(db: Database, store: BlobStore, name: str, version: int, checkpoint: str) -> Any:
    # Imported here: loading a model needs torch, which the API should not pay for at start-up.
    from cvcycle.registry.loading import load_model

    # Keyed by the checkpoint's content address too: "detector@1" of another home is another model.
    key = (name, version, checkpoint)
    with _lock:
        model = _loaded.get(key)
        if model is None:
            model = load_model(db, store, ModelRef(name, version))
            _loaded.clear()  # one production model in memory at a time
            _loaded[key] = model
        return model


def model_pseudo_labels(db: Database, store: BlobStore, frame_id: int) -> list[dict[str, Any]]:
    """The production model's boxes on the frame, as draft boxes with source ``pseudo`` and a score."""
    which = production_model(db)
    if which is None:
        return []
    with db.read() as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            return []
        key, size, width, height = frame.blob_key, frame.blob_size, frame.width, frame.height
    try:
        model = _model(db, store, *which)
        rgb = decode_jpeg(store.get_bytes(key, size))
        detections = model.predict([rgb], threshold=float(model.config.score_threshold))[0]
    except (CvcycleError, RuntimeError, ValueError, OSError) as exc:
        log.warning("no pseudo-labels from %s@%s for frame %s: %s", which[0], which[1], frame_id, exc)
        return []
    boxes: list[dict[str, Any]] = []
    for d in detections.to_json():
        # Models may reach past the border; drafts hold boxes inside the frame, none under a pixel.
        clipped = clip_box(Box(d["cls"], *(float(v) for v in d["box"])), width, height)
        if clipped is not None and clipped.w >= 1 and clipped.h >= 1:
            box = {"x": clipped.x, "y": clipped.y, "w": clipped.w, "h": clipped.h}
            boxes.append(
                {"id": f"m{len(boxes)}", "cls": d["cls"], "box": box, "source": "pseudo", "score": d["score"]}
            )
    return boxes
