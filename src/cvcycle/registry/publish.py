"""Publishing a model version into a Triton-layout model repository, atomically.

``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.onnx``. A version folder is
written whole under a dot-name beside the versions (``.staging-*``, which Triton and ``cvcycle
serve`` ignore), fsynced, and renamed into place; then the new config replaces the old by rename.
So a server polling the repository sees the previous state or the new one, never a half-written
file, and a publish that fails or is killed leaves the versions already published serving (a
killed one may leave a ``.staging-*`` folder, removed by the next publish). Publishing the same
version again changes nothing. Older version folders stay: the config's version policy decides
what a server serves. Publishes into one model folder take turns on a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcycle.db import Database
from cvcycle.errors import Conflict, CorruptBlob, InvalidInput
from cvcycle.registry.triton import fsync_dir, io_from_onnx, model_config, write_model_config
from cvcycle.store import BlobStore

MODEL_FILENAME = "model.onnx"
STAGING_PREFIX = ".staging-"
DEFAULT_MAX_BATCH_SIZE = 16


@dataclass(frozen=True)
class PublishedVersion:
    model: str
    version: int
    repository: Path
    model_file: Path
    config_file: Path
    sha256: str
    size: int
    changed: bool  # False when this exact version and config were already published

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "repository": str(self.repository),
            "model_file": str(self.model_file),
            "config_file": str(self.config_file),
            "sha256": self.sha256,
            "size": self.size,
            "changed": self.changed,
        }


def publish_model_version(
    db: Database,
    store: BlobStore,
    ref: str,
    repo_dir: Path | str,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> dict[str, Any]:
    """Publish the verified ONNX export of ``ref`` (``detector@3``, ``detector:production``) to ``repo_dir``.

    Refuses, touching nothing, when the version has no ONNX export or its verification did not pass.
    """
    from cvcycle.registry.versions import resolve_model_ref  # the registry's front door

    with db.read() as session:
        row = resolve_model_ref(session, ref)
        label = f"{row.name}@{row.version}"
        name, version, classes = row.name, row.version, list(row.classes or [])
        onnx_artifact = publishable_onnx(label, row.artifacts or {}, row.verification or {})
    data = store.get_bytes(onnx_artifact["key"], onnx_artifact.get("size"))
    if hashlib.sha256(data).hexdigest() != onnx_artifact["key"]:
        raise CorruptBlob(f"the ONNX blob of {label} does not match its digest {onnx_artifact['key']}")
    config = repository_config(name, data, classes, max_batch_size)
    published = write_repository_version(Path(repo_dir), name, version, data, config)
    return {**published.to_json(), "ref": label}


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
    if version < 1:
        raise InvalidInput(f"version {version} cannot be a Triton version folder; versions start at 1")
    model_dir = Path(repo_dir) / name
    version_dir = model_dir / str(version)
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    config_file = model_dir / "config.pbtxt"
    model_dir.mkdir(parents=True, exist_ok=True)
    with _model_lock(model_dir):
        _remove_stale_staging(model_dir)
        changed = False
        if version_dir.exists():
            existing = version_dir / MODEL_FILENAME
            if not existing.is_file() or _file_digest(existing) != digest:
                raise Conflict(
                    f"{version_dir} already exists with other content than {name}@{version}'s ONNX export",
                    hint="version folders are immutable: remove it by hand if it is stale, or publish "
                    "into another repository",
                )
        else:
            _stage_and_rename(model_dir, version_dir, onnx_bytes)
            changed = True
        if not config_file.is_file() or config_file.read_text() != config_text:
            write_model_config(model_dir, config_text)
            changed = True
    return PublishedVersion(
        name,
        version,
        Path(repo_dir),
        version_dir / MODEL_FILENAME,
        config_file,
        digest,
        len(onnx_bytes),
        changed,
    )


def _stage_and_rename(model_dir: Path, version_dir: Path, onnx_bytes: bytes) -> None:
    staging = model_dir / f"{STAGING_PREFIX}{version_dir.name}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        with open(staging / MODEL_FILENAME, "wb") as handle:
            handle.write(onnx_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(staging)
        os.rename(staging, version_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(model_dir)


def _remove_stale_staging(model_dir: Path) -> None:
    """Folders a killed publish left behind; safe under the lock, since no other publish is running."""
    for path in model_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _model_lock(model_dir: Path) -> Iterator[None]:
    with open(model_dir / ".publish.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
