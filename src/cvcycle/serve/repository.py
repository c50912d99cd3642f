"""The model repository as the server sees it: Triton's layout on disk, loaded into model instances.

``<root>/<model>/config.pbtxt`` and numeric version folders holding ``model.onnx`` (or the
config's ``default_model_filename``, or TensorRT plans named by ``cc_model_filenames``). Folders
whose names are not positive numbers without a leading zero are ignored, as Triton ignores them, so
a publisher can stage beside the versions.

Two model control modes, as Triton's: ``poll`` rescans the whole repository (at start and every
few seconds); ``explicit`` loads and unloads only when asked through the repository API
(``load``, ``unload``), and loads nothing at start except the models named.

A (re)load builds a new entry for the model: versions that are new or whose files or config
changed get their instances created, checked against the config and warmed up first; then the
table of models is swapped at once, and only then are the replaced versions retired. So requests
never wait for a load, never see half a model, and those in flight on a replaced version finish on
it. A version that fails to load is reported with the reason (in errors and in the repository
index) and, while it fails, the versions served before stay served. In poll mode failed loads are
not retried until their files change; an explicit load always retries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from cvcycle.errors import CvcycleError, InvalidInput, NotFound
from cvcycle.serve.model_config import ConfigTensor, ServedConfig, parse_model_config
from cvcycle.serve.protocol import NUMPY_DTYPES
from cvcycle.serve.runtimes import ORT_ERRORS, GraphTensor, LoadFailure, ModelInstance, open_instances
from cvcycle.serve.scheduler import ExecutionError, Scheduler
from cvcycle.serve.statistics import StatisticsBook, VersionStatistics

log = logging.getLogger("cvcycle.serve")

_VERSION_DIR = re.compile(r"^[1-9][0-9]*$")

CONTROL_MODES = ("poll", "explicit")


class ModelControlError(CvcycleError):
    """A load or unload the repository refused or could not complete; the message says why."""

    http_status = 400


@dataclass(frozen=True)
class TensorMeta:
    """A tensor as clients see it (``shape`` with the batch axis, -1 dynamic) and as the graph takes it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    reshape: tuple[int, ...] | None = None  # the graph's shape after the batch axis, when the config reshapes
    batched: bool = False  # the first dimension is the batch axis (max_batch_size > 0)

    @property
    def graph_shape(self) -> tuple[int, ...]:
        if self.reshape is None:
            return self.shape
        return (self.shape[:1] if self.batched else ()) + self.reshape


@dataclass
class LoadedVersion:
    """A version being served: its tensors as clients see them and the scheduler that runs it."""

    model: str
    version: int
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    max_batch_size: int
    scheduler: Scheduler
    statistics: VersionStatistics
    fingerprint: tuple[Any, ...]


@dataclass
class ModelEntry:
    """One model directory: its config, the versions being served, and why the others are not."""

    name: str
    config: ServedConfig | None
    ready: dict[int, LoadedVersion] = field(default_factory=dict)
    unavailable: dict[int, str] = field(default_factory=dict)  # version -> why it is not served
    error: str | None = None  # why the model as a whole has a problem
    on_disk: tuple[int, ...] = ()
    failed: dict[int, str] = field(default_factory=dict)  # selected versions that failed to load -> why

    @property
    def platform(self) -> str:
        if self.config is None:
            return ""
        return self.config.platform or self.config.backend


@dataclass(frozen=True)
class IndexEntry:
    """One row of the repository index (Triton's ``$repository_index_response`` item)."""

    name: str
    version: str = ""
    state: str = ""  # READY | UNAVAILABLE | LOADING | UNLOADING
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name}
        if self.version:
            out["version"] = self.version
        out["state"] = self.state
        out["reason"] = self.reason
        return out


def describe_run_error(exc: Exception) -> ExecutionError | None:
    """ONNX Runtime's refusal of the inputs (a client error) or failure to run (a server error)."""
    if isinstance(exc, ort_state.InvalidArgument):
        return ExecutionError(f"the model rejected the inputs: {str(exc).strip()}", invalid_input=True)
    if isinstance(exc, ORT_ERRORS):
        return ExecutionError(f"the model failed to run: {str(exc).strip()}")
    return None


class ModelRepository:
    """The models under ``root``, loaded by polling or on request, with every version's statistics."""

    def __init__(
        self,
        root: Path,
        *,
        control_mode: str = "poll",
        session_threads: int = 0,
        statistics: StatisticsBook | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFound(
                f"model repository {self.root} does not exist",
                hint="publish a model into it first: cvcycle publish MODEL@N --repo DIR",
            )
        if control_mode not in CONTROL_MODES:
            raise InvalidInput(
                f"unknown model control mode {control_mode!r}", hint=f"use {' or '.join(CONTROL_MODES)}"
            )
        self.control_mode = control_mode
        self.session_threads = session_threads
        self.statistics = statistics or StatisticsBook()
        self.models: dict[str, ModelEntry] = {}  # replaced whole on every change; read without a lock
        self._started = False
        self._wanted: set[str] = set()  # explicit mode: the models asked for and not unloaded since
        self._control_lock = threading.RLock()  # one load, unload or poll at a time
        self._failed: dict[tuple[str, int], tuple[tuple[Any, ...], str]] = {}
        self._unloaded: set[str] = set()
        self._loading: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the whole repository -----------------------------------------------------------------------

    def model_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def poll(self) -> None:
        """Rescan the repository: load what is new or changed, drop what is gone (poll mode)."""
        with self._control_lock:
            previous = self.models
            table = {d.name: self._scan_model(d, previous.get(d.name)) for d in self.model_dirs()}
            self._swap(table)
            self._started = True

    def start(self, load_models: list[str] | None = None) -> None:
        """The first load: everything in poll mode, the named models (``*`` for all) in explicit mode."""
        if self.control_mode == "poll":
            self.poll()
            return
        names = load_models or []
        if "*" in names:
            names = [d.name for d in self.model_dirs()]
        self._wanted.update(names)
        for name in names:
            try:
                self.load(name)
            except CvcycleError as exc:  # one bad model must not keep the others from serving
                log.warning("%s", exc.message)
        self._started = True

    @property
    def ready(self) -> bool:
        return not self.not_ready()

    def not_ready(self) -> str:
        """Why the server is not ready, "" when it is: every model that should be served is.

        Should be: every model of the repository in poll mode; in explicit mode, those asked for
        (``--load-model`` or a load request) and not unloaded since. A model is served when every
        version its policy selects is (Triton's strict readiness).
        """
        if not self._started:
            return "the model repository is still loading"
        try:
            expected = (
                {d.name for d in self.model_dirs()} if self.control_mode == "poll" else set(self._wanted)
            )
        except OSError as exc:
            return f"the model repository cannot be read: {exc.strerror}"
        models = self.models
        waiting = []
        for name in sorted(expected):
            entry = models.get(name)
            if name in self._loading or entry is None:
                waiting.append(f"model {name!r} is not loaded")
            elif not entry.ready:
                waiting.append(f"model {name!r} {entry.error or 'has no version ready'}")
            else:
                # A version whose reload failed while its previous load serves on is ready (as Triton's).
                waiting += [
                    f"version {v} of {name!r} {why}"
                    for v, why in sorted(entry.failed.items())
                    if v not in entry.ready
                ]
        return "; ".join(waiting)

    def start_polling(self, interval: float) -> None:
        if self._thread is not None or interval <= 0 or self.control_mode != "poll":
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_loop, args=(interval,), name="repository-poll", daemon=True
        )
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop polling and retire every version (requests in flight finish)."""
        self.stop_polling()
        with self._control_lock:
            old = self.models
            self.models = {}
            for entry in old.values():
                for loaded in entry.ready.values():
                    loaded.scheduler.retire()

    def _poll_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except OSError as exc:  # the repository vanished or is unreadable for a moment: try again
                log.warning("polling %s failed: %s", self.root, exc)
            except Exception:  # a dead poller would silently stop all reloads; log and go on
                log.exception("polling %s failed", self.root)

    def _swap(self, table: dict[str, ModelEntry]) -> None:
        """Make ``table`` the served one, then retire the versions it no longer serves."""
        previous = self.models
        self.models = table
        for name, old in previous.items():
            new = table.get(name)
            for version, loaded in old.ready.items():
                if new is None or new.ready.get(version) is not loaded:
                    loaded.scheduler.retire()
                    log.info("unloaded %s version %d", name, version)

    # -- the repository API ---------------------------------------------------------------------------

    def load(self, name: str, config: ServedConfig | None = None) -> ModelEntry:
        """Load or reload one model (a config given replaces config.pbtxt); ModelControlError if it fails."""
        model_dir = self.root / name
        if name.startswith(".") or "/" in name or not model_dir.is_dir():
            raise NotFound(
                f"failed to load {name!r}: no model directory {name!r} in the repository"
                f" (it has {', '.join(d.name for d in self.model_dirs()) or 'no models'})"
            )
        with self._control_lock:
            for key in [k for k in self._failed if k[0] == name]:
                del self._failed[key]  # asked explicitly: try the failed versions again
            self._loading.add(name)
            self._wanted.add(name)
            try:
                entry = self._scan_model(model_dir, self.models.get(name), config)
            finally:
                self._loading.discard(name)
            self._swap({**self.models, name: entry})
            self._unloaded.discard(name)
        failures = [f"version {v} of {name!r} {r}" for v, r in sorted(entry.failed.items())]
        if entry.error:  # nothing served, or a config that could not be read
            raise ModelControlError(f"failed to load {name!r}: {entry.error}")
        if failures:
            serving = ", ".join(map(str, sorted(entry.ready)))
            raise ModelControlError("; ".join(failures) + f" (still serving version {serving})")
        return entry

    def unload(self, name: str) -> None:
        """Stop serving a model; requests in flight on it finish."""
        if self.control_mode == "poll":
            raise ModelControlError(
                f"cannot unload {name!r}: the server polls the repository (--model-control-mode poll), "
                "so the repository decides what is served",
                hint="remove the model's directory, or run the server with --model-control-mode explicit",
            )
        with self._control_lock:
            self._wanted.discard(name)
            if name not in self.models:
                if (self.root / name).is_dir():
                    return  # not loaded: nothing to do, as Triton answers
                raise NotFound(f"failed to unload {name!r}: no such model in the repository or the server")
            self._swap({k: v for k, v in self.models.items() if k != name})
            self._unloaded.add(name)

    def was_unloaded(self, name: str) -> bool:
        return name in self._unloaded

    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model in the repository with each version's state and the reason for it."""
        models = self.models
        rows: list[IndexEntry] = []
        names = sorted({d.name for d in self.model_dirs()} | set(models))
        for name in names:
            entry = models.get(name)
            if name in self._loading:
                rows.append(IndexEntry(name, state="LOADING", reason="loading"))
            elif entry is None:
                reason = (
                    "unloaded"
                    if name in self._unloaded
                    else "not loaded: the server runs with --model-control-mode explicit; "
                    "load it through the repository API"
                )
                rows.append(IndexEntry(name, state="UNAVAILABLE", reason=reason))
            else:
                versions = sorted(set(entry.ready) | set(entry.unavailable))
                for version in versions:
                    if version in entry.ready:  # the reason: why a reload failed, the old load serving
                        rows.append(IndexEntry(name, str(version), "READY", entry.failed.get(version, "")))
                    else:
                        rows.append(IndexEntry(name, str(version), "UNAVAILABLE", entry.unavailable[version]))
                if not versions:
                    rows.append(IndexEntry(name, state="UNAVAILABLE", reason=entry.error or ""))
        return [row for row in rows if row.state == "READY"] if ready_only else rows

    # -- one model ----------------------------------------------------------------------------------

    def _scan_model(
        self, model_dir: Path, previous: ModelEntry | None, override: ServedConfig | None = None
    ) -> ModelEntry:
        name = model_dir.name
        kept = dict(previous.ready) if previous else {}
        config_path = model_dir / "config.pbtxt"
        if override is not None:
            config, text = override, override.text
        elif not config_path.is_file():
            # Taken away on purpose (publishes replace it by rename, never remove it): unload.
            return ModelEntry(name, None, error=f"{name}/config.pbtxt does not exist")
        else:
            try:
                text = config_path.read_text()
                config = parse_model_config(text)
            except (InvalidInput, OSError, UnicodeDecodeError) as exc:
                # A bad edit: what was served goes on being served, and the error says why nothing new is.
                return ModelEntry(
                    name,
                    previous.config if previous else None,
                    kept,
                    error=f"{name}/config.pbtxt: {exc.strerror if isinstance(exc, OSError) else exc}",
                )
        problem = _config_problem(name, config)
        if problem:
            return ModelEntry(name, config, {}, error=problem)

        on_disk = sorted(
            int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name)
        )
        selected = config.select_versions(on_disk)
        entry = ModelEntry(name, config, on_disk=tuple(on_disk))
        for version in on_disk:
            if version not in selected:
                entry.unavailable[version] = (
                    f"not served: the version policy ({config.policy_text}) serves "
                    f"{', '.join(map(str, selected)) or 'none'}"
                )
        for version in config.policy_versions:
            if version not in on_disk:
                entry.unavailable[version] = (
                    f"the version policy names it but its folder {name}/{version} does not exist"
                )
        config_digest = hashlib.sha256(text.encode()).hexdigest()
        for version in selected:
            version_dir = model_dir / str(version)
            fingerprint = (config_digest, *_files_fingerprint(version_dir))
            current = kept.get(version)
            if current is not None and current.fingerprint == fingerprint:
                entry.ready[version] = current
                continue
            failed = self._failed.get((name, version))
            if failed is not None and failed[0] == fingerprint:
                entry.unavailable[version] = entry.failed[version] = failed[1]
                continue
            try:
                entry.ready[version] = self._load_version(name, config, version, version_dir, fingerprint)
                self._failed.pop((name, version), None)
                log.info("loaded %s version %d", name, version)
            except LoadFailure as exc:
                # Paths under the repository are shown from its root: errors do not disclose the server's.
                reason = "failed to load: " + str(exc).replace(f"{self.root}{os.sep}", "")
                self._failed[(name, version)] = (fingerprint, reason)
                entry.unavailable[version] = entry.failed[version] = reason
                log.warning("version %d of %r %s", version, name, reason)
        if entry.failed:
            # Keep serving what was served while the newer versions fail, if it is still on disk.
            for version, loaded in kept.items():
                if version not in entry.ready and version in on_disk:
                    entry.ready[version] = loaded
                    entry.unavailable.pop(version, None)
        if not entry.ready:
            reasons = "; ".join(
                f"version {v} {r}" for v, r in sorted(entry.unavailable.items(), reverse=True)
            )
            entry.error = f"no version is ready ({reasons or f'no version folders in {name}/'})"
        return entry

    def _load_version(
        self, name: str, config: ServedConfig, version: int, version_dir: Path, fingerprint: tuple[Any, ...]
    ) -> LoadedVersion:
        instances = open_instances(config, version_dir, self.session_threads)
        inputs = _tensors(config, config.inputs, instances[0].inputs, "input")
        outputs = _tensors(config, config.outputs, instances[0].outputs, "output")
        label = f"{name}/{version}"
        for instance in instances:
            _warm_up(instance, inputs, label)
        statistics = self.statistics.of(name, version)
        scheduler = Scheduler(
            label,
            list(instances),
            max_batch_size=config.max_batch_size,
            batching=config.dynamic_batching,
            statistics=statistics,
            run_error=describe_run_error,
        )
        return LoadedVersion(
            name, version, inputs, outputs, config.max_batch_size, scheduler, statistics, fingerprint
        )


def _files_fingerprint(version_dir: Path) -> tuple[Any, ...]:
    """What changes when any file of the version folder is replaced: names, inodes, sizes, times."""
    try:
        with os.scandir(version_dir) as entries:
            files = sorted(
                (e.name, e.inode(), e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
            )
    except OSError:
        return ()
    return tuple(files)


def _config_problem(name: str, config: ServedConfig) -> str | None:
    if config.name and config.name != name:
        return f"config.pbtxt names the model {config.name!r} but its directory is {name!r}"
    if not config.platform and not config.backend:
        return 'config.pbtxt sets neither platform nor backend; set platform: "onnxruntime_onnx"'
    return None


def _tensors(
    config: ServedConfig, declared: tuple[ConfigTensor, ...], graph: tuple[GraphTensor, ...], role: str
) -> tuple[TensorMeta, ...]:
    """The tensors clients use: as declared in the config, checked against the graph."""
    by_name = {node.name: node for node in graph}
    if not declared:
        return tuple(TensorMeta(n.name, n.datatype, n.shape) for n in graph)
    batch = (-1,) if config.max_batch_size > 0 else ()
    out = []
    for tensor in declared:
        node = by_name.get(tensor.name)
        if node is None:
            raise LoadFailure(
                f"config.pbtxt declares {role} {tensor.name!r} but the model's {role}s are "
                f"{', '.join(by_name)}"
            )
        datatype = node.datatype
        if datatype != tensor.datatype:
            raise LoadFailure(
                f"config.pbtxt declares {role} {tensor.name!r} as {tensor.datatype} "
                f"but the model has {datatype}"
            )
        if datatype not in NUMPY_DTYPES and datatype != "BYTES":
            raise LoadFailure(
                f"{role} {tensor.name!r} has datatype {datatype}, which cvcycle serve cannot move"
            )
        model_shape = batch + (tensor.reshape if tensor.reshape is not None else tensor.dims)
        if not _compatible(model_shape, node.shape):
            raise LoadFailure(
                f"config.pbtxt gives {role} {tensor.name!r} the shape {list(model_shape)} "
                f"(max_batch_size {config.max_batch_size}) but the model has {list(node.shape)}"
            )
        out.append(TensorMeta(tensor.name, datatype, batch + tensor.dims, tensor.reshape, bool(batch)))
    if role == "input":
        undeclared = [name for name in by_name if name not in {t.name for t in declared}]
        if undeclared:
            raise LoadFailure(
                f"the model needs inputs {', '.join(undeclared)} that config.pbtxt does not declare"
            )
    return tuple(out)


def _compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _warm_up(instance: ModelInstance, inputs: tuple[TensorMeta, ...], label: str) -> None:
    """One inference on zeros of batch 1, so that the first request does not pay for the first run.

    Only where every other dimension is known; a failure is logged, not fatal, since zeros are not
    data and a graph may rightly refuse them.
    """
    feeds = {}
    for tensor in inputs:
        shape = tuple(1 if d == -1 and i == 0 else d for i, d in enumerate(tensor.graph_shape))
        if any(d < 0 for d in shape):
            return  # a dynamic dimension besides the batch: no size to warm up with
        feeds[tensor.name] = (
            np.full(shape, "", object)
            if tensor.datatype == "BYTES"
            else np.zeros(shape, NUMPY_DTYPES[tensor.datatype])
        )
    try:
        instance(feeds)
    except ORT_ERRORS as exc:
        log.warning("warm-up inference of %s failed: %s", label, str(exc).strip())
