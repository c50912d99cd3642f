"""``export_model_version``: a registered model version to verified ONNX, recorded in the registry.

The graph is verified against the PyTorch module on real frames: the validation slice of the
dataset version the model was trained on (the run's lineage), evenly spaced over the slice, in
batches of several sizes so that the dynamic batch axis is exercised. The ONNX bytes go to the blob
store as ``artifacts["onnx"]`` and the report to ``ModelVersion.verification``, passed or not: a
failed verification is kept for the user to read, and publishing refuses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from cvcycle.data.selection import resolve_selection
from cvcycle.data.snapshot import FrameRow, snapshot_frames
from cvcycle.db import Database
from cvcycle.db.models import Dataset, ModelVersion, Run
from cvcycle.errors import InvalidInput
from cvcycle.export.onnx import VerificationReport, export_onnx, verify_onnx
from cvcycle.media import decode_jpeg
from cvcycle.models.predictor import prepare_batch
from cvcycle.records import fields_of, to_jsonable
from cvcycle.refs import DatasetRef, format_ref
from cvcycle.store import BlobRef, BlobStore

#: Verification batch sizes, cycled: a batch of one, then larger ones.
BATCH_SIZES = (1, 8)
OPSET = 17


@dataclass(kw_only=True)
class ExportVerification(VerificationReport):
    """The verification report as a version records it: which frames of which data it was run on."""

    dataset: str  # home@3
    slice: str
    frame_ids: list[int]
    onnx_key: str
    opset: int


@dataclass(frozen=True)
class ExportSeconds:
    export: float
    verify: float


@dataclass(frozen=True)
class ExportResult:
    """An exported version: its ONNX blob, the verdict (one line per failed output), the timings."""

    model: str  # detector@3
    onnx: BlobRef
    passed: bool
    failures: list[str]
    seconds: ExportSeconds
    verification: ExportVerification


def export_model_version(
    db: Database, store: BlobStore, ref: str, frames_for_verification: int = 32
) -> ExportResult:
    """Export ``ref`` to ONNX, verify it on validation frames, record both; returns the summary."""
    from cvcycle.registry.loading import load_model
    from cvcycle.registry.versions import resolve_model_ref

    if frames_for_verification < 1:
        raise InvalidInput(f"frames_for_verification must be >= 1, got {frames_for_verification}")
    with db.read() as session:
        row = resolve_model_ref(session, ref)
        label, row_id = format_ref(row.name, row.version), row.id
        run = session.get(Run, row.run_id) if row.run_id is not None else None
        if run is None:
            raise InvalidInput(
                f"{label} has no training run, so there are no validation frames to verify its export on",
                hint="model versions made by `cvcycle train` record their run",
            )
        dataset = session.get(Dataset, run.dataset_id)
        assert dataset is not None  # a foreign key
        data_label = format_ref(dataset.name, run.dataset_version)
        val_slice = run.val_slice
        frames = snapshot_frames(
            session, resolve_selection(session, DatasetRef(dataset.name, run.dataset_version), val_slice)
        )
    if not frames:
        raise InvalidInput(
            f"the validation slice {val_slice!r} of {data_label} has no frames to verify {label}'s export on",
            hint="verification compares PyTorch and ONNX Runtime on real frames of the validation slice",
        )
    chosen = _evenly_spaced(frames, frames_for_verification)

    loaded = load_model(db, store, ref)
    module = loaded.module.cpu().eval()
    spec = loaded.adapter.export_inputs(module, loaded.config)
    if len(spec.input_names) != 1:
        raise InvalidInput(
            f"{label} takes {len(spec.input_names)} inputs ({', '.join(spec.input_names)}); verification on "
            "frames needs a single image input"
        )
    started = time.perf_counter()
    onnx_bytes = export_onnx(
        module, tuple(spec.args), spec.input_names, spec.output_names, spec.dynamic_axes, opset=OPSET
    )
    exported = time.perf_counter()
    images = [decode_jpeg(store.get_bytes(f.blob_key, f.blob_size)) for f in chosen]
    pixels, _ = prepare_batch(images, loaded.input_size)
    report = verify_onnx(module, onnx_bytes, [(torch.from_numpy(b),) for b in _batches(pixels)])
    verified = time.perf_counter()

    blob = store.put_bytes(onnx_bytes)
    verification = ExportVerification(
        **fields_of(report),
        dataset=data_label,
        slice=val_slice,
        frame_ids=[f.frame_id for f in chosen],
        onnx_key=blob.key,
        opset=OPSET,
    )
    with db.write() as session:
        target = session.get(ModelVersion, row_id)
        assert target is not None  # resolved above; versions are never deleted
        target.artifacts = {**(target.artifacts or {}), "onnx": to_jsonable(blob)}
        target.verification = to_jsonable(verification)
    return ExportResult(
        model=label,
        onnx=blob,
        passed=report.passed,
        failures=report.failures(),
        seconds=ExportSeconds(export=round(exported - started, 3), verify=round(verified - exported, 3)),
        verification=verification,
    )


def _evenly_spaced(frames: list[FrameRow], count: int) -> list[FrameRow]:
    """``count`` frames spread over the slice: neighbouring frames of one video are near-duplicates."""
    if len(frames) <= count:
        return frames
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in picks]


def _batches(pixels: np.ndarray) -> list[np.ndarray]:
    out, start, turn = [], 0, 0
    while start < len(pixels):
        size = BATCH_SIZES[min(turn, len(BATCH_SIZES) - 1)]
        out.append(pixels[start : start + size])
        start += size
        turn += 1
    return out
