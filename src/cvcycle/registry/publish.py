"""Publishing a model version into a Triton-layout model repository, atomically.

``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.onnx``, written through
``registry.layout`` (its staging, its lock, shared with ``cvcycle sync``): a server polling the
repository sees the previous state or the new one, and a publish that fails or is killed leaves
the versions already published serving. Publishing the same version again changes nothing. Older
version folders stay: the config's version policy decides what a server serves. Only a verified
ONNX export is published (:func:`publishable_onnx`, which sync checks too).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcycle.db import Database
from cvcycle.errors import Conflict, CorruptBlob, InvalidInput
from cvcycle.refs import format_ref
from cvcycle.registry.layout import MODEL_FILENAME, model_folder
from cvcycle.registry.triton import io_from_onnx, model_config
from cvcycle.store import BlobStore
from cvcycle.store.layout import hash_file

DEFAULT_MAX_BATCH_SIZE = 16


@dataclass(frozen=True)
class PublishedVersion:
    """A version in a model repository: where its files are, the model's digest and size."""

    model: str
    version: int
    repository: Path
    model_file: Path
    config_file: Path
    sha256: str
    size: int
    changed: bool  # False when this exact version and config were already published
    ref: str  # detector@3


def publish_model_version(
    db: Database,
    store: BlobStore,
    ref: str,
    repo_dir: Path | str,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> PublishedVersion:
    """Publish the verified ONNX export of ``ref`` (``detector@3``, ``detector:production``) to ``repo_dir``.

    Refuses, touching nothing, when the version has no ONNX export or its verification did not pass.
    """
    from cvcycle.registry.versions import resolve_model_ref  # the registry's front door

    with db.read() as session:
        row = resolve_model_ref(session, ref)
        label = format_ref(row.name, row.version)
        name, version, classes = row.name, row.version, list(row.classes or [])
        onnx_artifact = publishable_onnx(label, row.artifacts or {}, row.verification or {})
    data = store.get_bytes(onnx_artifact["key"], onnx_artifact.get("size"))
    if hashlib.sha256(data).hexdigest() != onnx_artifact["key"]:
        raise CorruptBlob(f"the ONNX blob of {label} does not match its digest {onnx_artifact['key']}")
    config = repository_config(name, data, classes, max_batch_size)
    return write_repository_version(Path(repo_dir), name, version, data, config)


def publishable_onnx(label: str, artifacts: dict[str, Any], verification: dict[str, Any]) -> dict[str, Any]:
    """The ``onnx`` artifact (key, size) of a version; InvalidInput if it is missing or not verified."""
    onnx_artifact = dict(artifacts.get("onnx") or {})
    if not onnx_artifact:
        raise InvalidInput(
            f"{label} has no ONNX export, so there is nothing to publish",
            hint=f"export and verify it first: cvcycle model export {label}",
        )
    if not verification.get("passed"):
        raise InvalidInput(
            f"{label} cannot be published: its ONNX export {_verification_problem(verification)}",
            hint=f"see `cvcycle model export {label} --json` for the per-output errors; "
            "fix the model or its export and export again",
        )
    return onnx_artifact


def repository_config(name: str, onnx_bytes: bytes, classes: list[str], max_batch_size: int) -> str:
    """The ``config.pbtxt`` a published version gets: the graph's tensors and the model's classes."""
    io = io_from_onnx(onnx_bytes)
    return model_config(
        name,
        max_batch_size=max_batch_size,
        inputs=io.inputs,
        outputs=io.outputs,
        parameters={"classes": json.dumps(classes)},
    )


def _verification_problem(verification: dict[str, Any]) -> str:
    if not verification:
        return "was never verified"
    failed = [o.get("name", "?") for o in verification.get("outputs", []) if not o.get("passed")]
    if failed:
        plural = "s" if len(failed) > 1 else ""
        return f"failed verification against PyTorch on output{plural} {', '.join(failed)}"
    return "failed verification against PyTorch"


def write_repository_version(
    repo_dir: Path, name: str, version: int, onnx_bytes: bytes, config_text: str
) -> PublishedVersion:
    """Write ``<repo>/<name>/<version>/model.onnx`` and ``<repo>/<name>/config.pbtxt`` atomically."""
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    with model_folder(repo_dir, name) as folder:
        version_dir = folder.version_dir(version)
        changed = False
        if version_dir.exists():
            existing = version_dir / MODEL_FILENAME
            if not existing.is_file() or hash_file(existing) != digest:
                raise Conflict(
                    f"{version_dir} already exists with other content than "
                    f"{format_ref(name, version)}'s ONNX export",
                    hint="version folders are immutable: remove it by hand if it is stale, or publish "
                    "into another repository",
                )
        else:
            folder.install_files(version, {MODEL_FILENAME: onnx_bytes})
            changed = True
        changed = folder.write_model_config(config_text) or changed
    return PublishedVersion(
        name,
        version,
        Path(repo_dir),
        version_dir / MODEL_FILENAME,
        folder.config_file,
        digest,
        len(onnx_bytes),
        changed,
        format_ref(name, version),
    )
