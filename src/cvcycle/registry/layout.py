"""The Triton model repository on disk: the one writer of ``<repo>/<model>/``.

``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/`` holding ``model.onnx`` and a
TensorRT plan per compute capability (``model_<cc>.plan``, :func:`plan_filename`). Triton and
``cvcycle serve`` read every model folder and, in it, the folders named by a version number; they
ignore dot-names, which is where the writers keep their own state. ``cvcycle publish`` and
``cvcycle sync`` both write through :func:`model_folder`:

- **One lock per model**: ``flock`` on the model folder itself (so no lock file shows in the
  repository). Writers of one model, in any processes, take turns: a second one waits, saying so
  in a warning, until the first is done. A killed writer's lock goes with its process.
- **One staging scheme**: a version is assembled in ``<model>/.staging/<version>/``, inside the
  model folder (a hidden folder at the top of the repository would be taken for a model by
  Triton's polling). Its files are fsynced, then the folder is, and it is renamed to
  ``<model>/<version>``: a version folder is whole or absent. Taking the lock removes what killed
  writers left there, except the staging of the version the new writer resumes (sync continues a
  half-copied file where it stopped).
- ``config.pbtxt`` is replaced by rename, and only when its text changes
  (:meth:`ModelFolder.write_model_config`); a version folder is removed by renaming it out of sight
  first (:meth:`ModelFolder.remove_version`).

So a server polling the repository sees the previous state or the new one, never a half-written
file, and a writer that fails or is killed leaves the versions already there, and their config,
serving. A writer that created the model folder and failed before filling it removes it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cvcycle.errors import InvalidInput
from cvcycle.registry.triton import check_compute_capability

log = logging.getLogger(__name__)

MODEL_FILENAME = "model.onnx"
CONFIG_FILENAME = "config.pbtxt"
STAGING_DIR = ".staging"

_VERSION_DIR = re.compile(r"^[1-9][0-9]*$")  # Triton's version folders: no sign, no leading zero


def plan_filename(capability: str) -> str:
    """The file a TensorRT plan for compute capability ``capability`` ("8.6") gets in a version folder."""
    return f"model_{check_compute_capability(capability)}.plan"


def plan_filenames(capabilities: Sequence[str]) -> dict[str, str]:
    """``cc_model_filenames`` for plans built for each of ``capabilities``: {"8.6": "model_8.6.plan"}."""
    return {capability: plan_filename(capability) for capability in capabilities}


@dataclass(frozen=True)
class ModelFolder:
    """``<repo>/<model>``, held under its lock: what :func:`model_folder` hands a writer."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILENAME

    def version_dir(self, version: int) -> Path:
        if version < 1:
            raise InvalidInput(f"version {version} cannot be a Triton version folder; versions start at 1")
        return self.path / str(version)

    def versions(self) -> list[int]:
        """The version folders there, lowest first."""
        return sorted(int(p.name) for p in self.path.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name))

    def staging(self, version: int) -> Path:
        """The folder ``version`` is assembled in, created if absent; what a resumed writer staged stays."""
        self.version_dir(version)  # a valid version number
        path = self.path / STAGING_DIR / str(version)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def discard(self, version: int) -> None:
        """Drop what is staged for ``version``."""
        shutil.rmtree(self.path / STAGING_DIR / str(version), ignore_errors=True)

    def install(self, version: int) -> Path:
        """Put the staged ``version`` in place by rename; its files must be fsynced already."""
        staging, target = self.path / STAGING_DIR / str(version), self.version_dir(version)
        fsync_dir(staging)
        os.rename(staging, target)
        fsync_dir(self.path)
        return target

    def install_files(self, version: int, files: Mapping[str, bytes]) -> Path:
        """Stage ``files`` (name -> bytes) as ``version``, fsynced, and put the folder in place."""
        staging = self.staging(version)
        try:
            for name, data in files.items():
                _write_synced(staging / name, data)
            return self.install(version)
        except BaseException:
            self.discard(version)
            raise

    def write_model_config(self, text: str) -> bool:
        """Make ``config.pbtxt`` hold ``text``, replaced by rename; False when it already did."""
        target = self.config_file
        if target.is_file() and target.read_text() == text:
            return False
        staged = self.path / f".{CONFIG_FILENAME}.{uuid.uuid4().hex}.tmp"
        try:
            _write_synced(staged, text.encode())
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
        fsync_dir(self.path)
        return True

    def remove_version(self, version: int) -> None:
        """Take a version folder out of sight at once (by rename into the staging), then delete it."""
        trash = self.path / STAGING_DIR / f"removing-{version}"
        trash.parent.mkdir(exist_ok=True)
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(self.version_dir(version), trash)
        fsync_dir(self.path)
        shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def model_folder(repo_dir: Path | str, name: str, *, resume: int | None = None) -> Iterator[ModelFolder]:
    """Hold ``<repo_dir>/<name>`` (created if absent) under the model's lock; waits for another writer.

    Taking the lock removes the staging killed writers left, except that of version ``resume`` when
    it is not in place yet: the caller continues it. Leaving removes an empty staging folder, and
    the model folder when this writer created it and left it empty.
    """
    path = Path(repo_dir) / name
    fd, created = _lock(path)
    try:
        if resume is not None and (path / str(resume)).exists():
            resume = None
        _remove_stale_staging(path, keep=resume)
        yield ModelFolder(path)
    finally:
        _remove_if_empty(path / STAGING_DIR)
        if created:
            _remove_if_empty(path)
        os.close(fd)  # releases the lock, as a killed process's exit does


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(path: Path) -> tuple[int, bool]:
    """An open descriptor of the model folder holding its ``flock``, and whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        created = False
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            created = True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except NotADirectoryError:
            raise InvalidInput(f"{path} is a file, not a model folder of a repository") from None
        except FileNotFoundError:
            continue  # removed by the writer that had created it, between the mkdir and the open
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("waiting for another writer of %s to finish", path)
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_folder(path, fd):
                return fd, created
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the writer holding it created the folder, failed and removed it: again


def _same_folder(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _remove_stale_staging(model_dir: Path, keep: int | None) -> None:
    """What killed writers staged (and half-removed versions), except the staging of version ``keep``."""
    staging_root = model_dir / STAGING_DIR
    if not staging_root.is_dir():
        return
    for path in staging_root.iterdir():
        if keep is not None and path.name == str(keep):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or not there
        path.rmdir()
