"""``sync_alias`` and ``watch_alias``: a serving box's model repository follows an alias of the registry.

For every model with the alias (or the models named), the version the alias points at is copied
from the blob store into ``<repo>/<model>/<version>/`` in Triton's layout: ``model.onnx`` (the
verified ONNX export), the TensorRT plans the version carries (``model_<cc>.plan``, for a config
that names them in ``cc_model_filenames``), and ``<repo>/<model>/config.pbtxt`` as ``cvcycle
publish`` writes it. Then the server is asked to load the model, and the versions the alias has
left are removed once the server serves the new one.

How a half-copied version is never visible, and a killed sync resumes (the staging, the lock and
the renames are ``registry.layout``'s, shared with ``cvcycle publish``, which a sync of the same
model waits for, and the other way round):

- Files are staged in ``<repo>/<model>/.staging/<version>/``. A file is written as ``<name>.part``,
  its sha256 is checked against the digest the registry recorded, and only then renamed to
  ``<name>``; once every file is in, the folder is renamed to ``<repo>/<model>/<version>``.
- A sync killed midway leaves its staging folder. The next one keeps the verified files, continues
  a ``.part`` from where it stopped (hashing the bytes already there, not fetching them again) and
  removes the staging of versions the alias no longer points at.
- ``config.pbtxt`` is replaced only when the generated text differs, after the version folder is
  in place (a server never sees a config that names a version not yet there).

Version policy ``latest 1``: a server serves the highest version folder. So superseded (older)
folders are removed only after the server reports the new version ready, and never without a
``--server`` to ask (they are kept, and reported, since ``latest 1`` does not serve them). A
rollback is the exception: a folder newer than the alias' version would go on being served, so it
is removed as soon as the older version is in place; the server keeps serving it from memory until
it has loaded the older one. The repository is never left without the alias' version.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cvcycle.db import Database
from cvcycle.db.models import ModelAlias
from cvcycle.errors import Conflict, CorruptBlob, CvcycleError, InvalidInput, NotFound
from cvcycle.refs import ModelRef, check_alias, check_model_name, format_ref
from cvcycle.registry.layout import (
    CONFIG_FILENAME,
    MODEL_FILENAME,
    ModelFolder,
    model_folder,
    plan_filename,
)
from cvcycle.registry.publish import DEFAULT_MAX_BATCH_SIZE, publishable_onnx, repository_config
from cvcycle.registry.server_control import InferenceServerControl
from cvcycle.registry.versions import resolve_model_ref
from cvcycle.store import BlobStore
from cvcycle.store.layout import hash_file

log = logging.getLogger("cvcycle.registry.sync")

DEFAULT_LOAD_TIMEOUT = 120.0
CHUNK_SIZE = 1 << 20  # bytes read from the store, and written to the staged file, at a time

#: ``(description, bytes done, bytes total)``, called as a copy starts and after each chunk, once
#: the bytes done are in the staged file (still inside the model's lock). A callback that raises
#: stops the sync; what it had staged is resumed by the next one.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class VersionFile:
    """A file of a version folder and the blob it is copied from."""

    name: str
    key: str  # the sha256 the registry recorded
    size: int


@dataclass(frozen=True)
class SyncTarget:
    """A model version an alias points at, with what goes into its version folder."""

    model: str
    version: int
    classes: tuple[str, ...]
    files: tuple[VersionFile, ...]

    @property
    def label(self) -> str:
        return format_ref(self.model, self.version)


@dataclass
class ModelSync:
    """What one pass did for one model."""

    model: str
    version: int
    copied: bool = False  # the version folder was put in place by this pass
    bytes_copied: int = 0  # fetched from the store by this pass (a resumed copy counts only the rest)
    bytes_resumed: int = 0  # found already staged by a killed sync
    config_written: bool = False
    loaded: bool | None = None  # None: no server to ask; False: it already served the version
    removed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # superseded, kept for want of a server to confirm

    @property
    def changed(self) -> bool:
        return self.copied or self.config_written or bool(self.loaded) or bool(self.removed)

    def changes(self, repo: Path) -> list[str]:
        """One line per change, for logs."""
        where = repo / self.model
        lines = []
        if self.copied:
            resumed = f", resuming {self.bytes_resumed:,} bytes already staged" if self.bytes_resumed else ""
            lines.append(
                f"copied {format_ref(self.model, self.version)} into {where / str(self.version)} "
                f"({self.bytes_copied:,} bytes fetched{resumed})"
            )
        if self.config_written:
            lines.append(f"wrote {where / CONFIG_FILENAME}")
        if self.loaded:
            lines.append(f"the server serves {self.model} version {self.version}")
        lines += [f"removed {where / str(v)}" for v in self.removed]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "ref": format_ref(self.model, self.version),
            "copied": self.copied,
            "bytes_copied": self.bytes_copied,
            "bytes_resumed": self.bytes_resumed,
            "config_written": self.config_written,
            "loaded": self.loaded,
            "removed": self.removed,
            "kept": self.kept,
            "changed": self.changed,
        }


@dataclass
class SyncReport:
    """One pass over the repository."""

    alias: str
    repository: Path
    models: list[ModelSync]

    @property
    def changed(self) -> bool:
        return any(m.changed for m in self.models)

    def changes(self) -> list[str]:
        return [line for m in self.models for line in m.changes(self.repository)]

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "repository": str(self.repository),
            "changed": self.changed,
            "models": [m.to_json() for m in self.models],
        }


def sync_alias(
    db: Database,
    store: BlobStore,
    repo_dir: Path | str,
    alias: str,
    *,
    models: Sequence[str] = (),
    server: str | None = None,
    server_key: tuple[str, str] | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    progress: Progress | None = None,
) -> SyncReport:
    """Make ``repo_dir`` hold (and ``server`` serve) the versions ``alias`` points at; one pass."""
    syncer = RepositorySync(
        db, store, repo_dir, alias, models, server, max_batch_size, load_timeout, server_key=server_key
    )
    try:
        return syncer.run_pass(progress)
    finally:
        syncer.close()


def watch_alias(
    db: Database,
    store: BlobStore,
    repo_dir: Path | str,
    alias: str,
    *,
    interval: float,
    stop: threading.Event | None = None,
    on_pass: Callable[[SyncReport], None] | None = None,
    models: Sequence[str] = (),
    server: str | None = None,
    server_key: tuple[str, str] | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    progress: Progress | None = None,
) -> None:
    """Sync every ``interval`` seconds until ``stop`` is set, logging each change.

    An error in the first pass is raised (the options are wrong); later ones are logged and the
    next pass tries again (the registry, the store or the server may be back by then).
    """
    if interval <= 0:
        raise InvalidInput(f"the watch interval must be positive, got {interval:g} s")
    stop = stop or threading.Event()
    syncer = RepositorySync(
        db, store, repo_dir, alias, models, server, max_batch_size, load_timeout, server_key=server_key
    )
    try:
        first = True
        while True:
            try:
                report = syncer.run_pass(progress)
            except (CvcycleError, OSError, SQLAlchemyError) as exc:  # a store, server or database hiccup
                if first:
                    raise
                hint = getattr(exc, "hint", None)
                log.error("sync of %s failed: %s%s", syncer.repo, exc, f" (hint: {hint})" if hint else "")
            else:
                for line in report.changes():
                    log.info("%s", line)
                if on_pass is not None:
                    on_pass(report)
            first = False
            if stop.wait(interval):
                return
    finally:
        syncer.close()


def resolve_targets(session: Session, alias: str, models: Sequence[str] = ()) -> list[SyncTarget]:
    """The versions ``alias`` points at: of the models named, or of every model that has it."""
    check_alias(alias)
    names = [check_model_name(name) for name in dict.fromkeys(models)]
    if not names:
        query = select(ModelAlias.name).where(ModelAlias.alias == alias).order_by(ModelAlias.name)
        names = list(session.scalars(query))
        if not names:
            raise NotFound(
                f"no model has the alias {alias!r}, so there is nothing to sync",
                hint=f"point it at a version first: cvcycle model alias MODEL@N {alias}",
            )
    targets = []
    for name in names:
        row = resolve_model_ref(session, ModelRef(name, alias=alias))
        label = format_ref(row.name, row.version)
        artifacts = dict(row.artifacts or {})
        onnx = publishable_onnx(label, artifacts, dict(row.verification or {}))
        files = [VersionFile(MODEL_FILENAME, onnx["key"], int(onnx["size"]))]
        for capability, blob in sorted(dict(artifacts.get("tensorrt") or {}).items()):
            if not isinstance(blob, dict):
                raise InvalidInput(f"{label} records a TensorRT plan under {capability!r} without its blob")
            try:
                filename = plan_filename(str(capability))
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{label} records a TensorRT plan under {capability!r}, which is not a compute "
                    "capability such as 8.6"
                ) from exc
            files.append(VersionFile(filename, blob["key"], int(blob["size"])))
        targets.append(SyncTarget(row.name, row.version, tuple(row.classes or ()), tuple(files)))
    return targets


class RepositorySync:
    """Syncs one repository to one alias, pass after pass (the digests it has checked are remembered)."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        repo_dir: Path | str,
        alias: str,
        models: Sequence[str] = (),
        server: str | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT,
        *,
        server_key: tuple[str, str] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise InvalidInput(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.db = db
        self.store = store
        self.repo = Path(repo_dir).expanduser().absolute()
        self.alias = check_alias(alias)
        self.models = tuple(models)
        self.max_batch_size = max_batch_size
        self.load_timeout = load_timeout
        self.server = InferenceServerControl(server, key=server_key) if server else None
        # (path, inode, size, mtime) -> sha256, so that a watch does not re-hash unchanged files.
        self._digests: dict[tuple[str, int, int, int], str] = {}
        self._configs: dict[tuple[str, str, tuple[str, ...]], str] = {}

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def run_pass(self, progress: Progress | None = None) -> SyncReport:
        with self.db.read() as session:
            targets = resolve_targets(session, self.alias, self.models)
        if self.repo.exists() and not self.repo.is_dir():
            raise InvalidInput(f"{self.repo} is a file, not a model repository folder")
        return SyncReport(self.alias, self.repo, [self._sync_model(t, progress) for t in targets])

    # -- one model ----------------------------------------------------------------------------------

    def _sync_model(self, target: SyncTarget, progress: Progress | None) -> ModelSync:
        """The whole pass over one model, the server's load included, holds the model's lock."""
        with model_folder(self.repo, target.model, resume=target.version) as folder:
            return self._sync_locked(target, folder, progress)

    def _sync_locked(self, target: SyncTarget, folder: ModelFolder, progress: Progress | None) -> ModelSync:
        version_dir = folder.version_dir(target.version)
        result = ModelSync(target.model, target.version)
        if version_dir.is_dir():
            self._check_in_place(target, version_dir)
        else:
            self._stage_and_install(target, folder, result, progress)
        config_text = self._config_text(target, version_dir / MODEL_FILENAME)
        result.config_written = folder.write_model_config(config_text)
        on_disk = folder.versions()
        for newer in [v for v in on_disk if v > target.version]:
            # Under ``latest 1`` a newer folder would go on being served: a rollback removes it first.
            folder.remove_version(newer)
            result.removed.append(newer)
        older = [v for v in on_disk if v < target.version]
        if self.server is None:
            result.kept = older
            return result
        if result.changed or not self.server.version_ready(target.model, target.version):
            self.server.load(target.model, self.load_timeout)  # False: the server's poll picks it up
            self.server.wait_until_ready(target.model, target.version, self.load_timeout)
            result.loaded = True
        else:
            result.loaded = False
        for version in older:
            folder.remove_version(version)
            result.removed.append(version)
        return result

    def _check_in_place(self, target: SyncTarget, version_dir: Path) -> None:
        """A version folder already there must hold exactly the registry's bytes."""
        for file in target.files:
            path = version_dir / file.name
            if not path.is_file():
                raise Conflict(
                    f"{version_dir} is there but has no {file.name}, which {target.label} carries",
                    hint=f"it was changed by hand: remove {version_dir} and sync again",
                )
            got = self._digest(path)
            if got != file.key:
                raise Conflict(
                    f"{path} holds other bytes than {target.label}'s {file.name}: its sha256 is {got}, "
                    f"the registry recorded {file.key}",
                    hint=f"version folders are immutable and it was changed by hand: remove {version_dir} "
                    "and sync again",
                )

    def _stage_and_install(
        self, target: SyncTarget, folder: ModelFolder, result: ModelSync, progress: Progress | None
    ) -> None:
        staging = folder.staging(target.version)
        try:
            for file in target.files:
                fetched, resumed = self._copy_verified(target, file, staging, progress)
                result.bytes_copied += fetched
                result.bytes_resumed += resumed
        except CvcycleError:
            # A damaged or missing blob is no interruption to resume from: leave the repository as
            # it was, without even the staging of this version.
            folder.discard(target.version)
            raise
        folder.install(target.version)
        result.copied = True

    def _copy_verified(
        self, target: SyncTarget, file: VersionFile, staging: Path, progress: Progress | None
    ) -> tuple[int, int]:
        """Copy one blob into ``staging`` as ``file.name``, verified; (bytes fetched, bytes resumed)."""
        final = staging / file.name
        if final.is_file():
            if final.stat().st_size == file.size and self._digest(final) == file.key:
                return 0, file.size  # verified by a sync that was killed later
            final.unlink()
        part = staging / f"{file.name}.part"
        offset = part.stat().st_size if part.is_file() else 0
        if offset > file.size:
            part.unlink()
            offset = 0
        try:
            digest, size = _fetch(self.store, file, part, offset, f"{target.label} {file.name}", progress)
        except CorruptBlob as exc:  # the store's reader found the whole blob damaged
            part.unlink(missing_ok=True)
            raise CorruptBlob(
                f"checksum mismatch for {file.name} of {target.label}: {exc.message}; "
                f"nothing was changed in {self.repo}",
                hint=exc.hint,
            ) from exc
        if digest != file.key or size != file.size:
            part.unlink()
            if offset:
                log.warning("the staged part of %s %s was damaged; copying it again", target.label, file.name)
                return self._copy_verified(target, file, staging, progress)
            raise CorruptBlob(
                f"checksum mismatch for {file.name} of {target.label}: the copy from blob {file.key} "
                f"({size:,} bytes) has sha256 {digest}, but the registry recorded {file.key} "
                f"({file.size:,} bytes); nothing was changed in {self.repo}",
                hint="the blob store holds a damaged copy: restore the blob from a backup or export "
                "the version again (cvcycle model export)",
            )
        os.rename(part, final)
        return size - offset, offset

    def _config_text(self, target: SyncTarget, onnx_file: Path) -> str:
        key = (target.files[0].key, str(self.max_batch_size), target.classes)
        text = self._configs.get(key)
        if text is None:
            onnx_bytes = onnx_file.read_bytes()
            text = repository_config(target.model, onnx_bytes, list(target.classes), self.max_batch_size)
            self._configs[key] = text
        return text

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:
            digest = self._digests[key] = hash_file(path)
        return digest


def _fetch(
    store: BlobStore, file: VersionFile, part: Path, offset: int, description: str, progress: Progress | None
) -> tuple[str, int]:
    """Append the blob's bytes from ``offset`` to ``part``, fsynced; the sha256 and size of the whole part."""
    sha = hashlib.sha256()
    if offset:
        with open(part, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
                sha.update(chunk)
    done = offset
    with store.open(file.key) as source, open(part, "ab") as sink:
        if offset:
            source.seek(offset)
        if progress is not None:
            progress(description, done, file.size)
        while chunk := source.read(CHUNK_SIZE):
            sink.write(chunk)
            sink.flush()  # the bytes reported are in the file, for a resume after a kill
            sha.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(description, done, file.size)
        os.fsync(sink.fileno())
    return sha.hexdigest(), done
