"""The model repository as the server sees it: Triton's layout on disk, polled, loaded into ONNX Runtime.

``<root>/<model>/config.pbtxt`` and numeric version folders holding ``model.onnx`` (or the
config's ``default_model_filename``). Folders whose names are not positive numbers without a
leading zero are ignored, as Triton ignores them, so a publisher can stage beside the versions.

Each poll builds a new table of models and swaps it in at once. A version that is new (or whose
file or config changed) gets its ONNX Runtime session created, checked against the config and
warmed up before the swap, so requests never wait for a load and never see half a model; requests
in flight keep the session they started with. A version that fails to load is reported with the
reason and, while it fails, the versions served before stay served. Failed loads are not retried
until their files change.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from cvcycle.errors import InvalidInput, NotFound
from cvcycle.serve.model_config import (
    ONNX_BACKEND,
    ONNX_PLATFORM,
    ConfigTensor,
    ServedConfig,
    parse_model_config,
)
from cvcycle.serve.protocol import NUMPY_DTYPES, ORT_DATATYPES

log = logging.getLogger("cvcycle.serve")

_VERSION_DIR = re.compile(r"^[1-9][0-9]*$")

#: What ONNX Runtime raises: its pybind exceptions share no base class but Exception.
ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.NoSuchFile,
    ort_state.NoModel,
    ort_state.EngineError,
    ort_state.RuntimeException,
    ort_state.InvalidProtobuf,
    ort_state.NotImplemented,
    ort_state.InvalidGraph,
    ort_state.EPFail,
    RuntimeError,
    ValueError,
)


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
    version: int
    session: ort.InferenceSession
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
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

    @property
    def platform(self) -> str:
        return self.config.platform or ONNX_PLATFORM if self.config else ONNX_PLATFORM


class LoadFailure(Exception):
    """A version could not be loaded; the message says why."""


class ModelRepository:
    """The models under ``root``, reloaded by :meth:`poll` (a background thread calls it periodically)."""

    def __init__(self, root: Path, *, session_threads: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFound(
                f"model repository {self.root} does not exist",
                hint="publish a model into it first: cvcycle publish MODEL@N --repo DIR",
            )
        self.session_threads = session_threads
        self.models: dict[str, ModelEntry] = {}  # replaced whole by each poll; read without a lock
        self.ready = False
        self._poll_lock = threading.Lock()
        self._failed: dict[tuple[str, int], tuple[tuple[Any, ...], str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- polling ------------------------------------------------------------------------------------

    def poll(self) -> None:
        """Rescan the repository, load what is new or changed, then swap the model table."""
        with self._poll_lock:
            previous = self.models
            table = {}
            for model_dir in sorted(
                p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                table[model_dir.name] = self._scan_model(model_dir, previous.get(model_dir.name))
            self.models = table
            for name, old in previous.items():
                new = table.get(name)
                for version in old.ready:
                    if new is None or new.ready.get(version) is not old.ready[version]:
                        log.info("unloaded %s version %d", name, version)
            self.ready = True

    def start_polling(self, interval: float) -> None:
        if self._thread is not None or interval <= 0:
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

    def _poll_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except OSError as exc:  # the repository vanished or is unreadable for a moment: try again
                log.warning("polling %s failed: %s", self.root, exc)
            except Exception:  # a dead poller would silently stop all reloads; log and go on
                log.exception("polling %s failed", self.root)

    # -- one model ----------------------------------------------------------------------------------

    def _scan_model(self, model_dir: Path, previous: ModelEntry | None) -> ModelEntry:
        name = model_dir.name
        kept = dict(previous.ready) if previous else {}
        config_path = model_dir / "config.pbtxt"
        if not config_path.is_file():
            # Taken away on purpose (publishes replace it by rename, never remove it): unload.
            return ModelEntry(name, None, error=f"{config_path} does not exist")
        try:
            text = config_path.read_text()
            config = parse_model_config(text)
        except (InvalidInput, OSError, UnicodeDecodeError) as exc:
            # A bad edit: what was served goes on being served, and the error says why nothing new is.
            return ModelEntry(
                name, previous.config if previous else None, kept, error=f"{config_path}: {exc}"
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
                    f"the version policy names it but {model_dir / str(version)} does not exist"
                )
        config_digest = hashlib.sha256(text.encode()).hexdigest()
        failed_any = False
        for version in selected:
            path = model_dir / str(version) / config.default_model_filename
            if not path.is_file():
                entry.unavailable[version] = f"{path} does not exist"
                failed_any = True
                continue
            stat = path.stat()
            fingerprint = (config_digest, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            current = kept.get(version)
            if current is not None and current.fingerprint == fingerprint:
                entry.ready[version] = current
                continue
            failed = self._failed.get((name, version))
            if failed is not None and failed[0] == fingerprint:
                entry.unavailable[version] = failed[1]
                failed_any = True
                continue
            try:
                entry.ready[version] = self._load(config, version, path, fingerprint)
                self._failed.pop((name, version), None)
                log.info("loaded %s version %d", name, version)
            except LoadFailure as exc:
                reason = f"failed to load {path}: {exc}"
                self._failed[(name, version)] = (fingerprint, reason)
                entry.unavailable[version] = reason
                failed_any = True
                log.warning("%s version %d: %s", name, version, reason)
        if failed_any:
            # Keep serving what was served while the newer versions fail, if it is still on disk.
            for version, loaded in kept.items():
                if version not in entry.ready and version in on_disk:
                    entry.ready[version] = loaded
                    entry.unavailable.pop(version, None)
        if not entry.ready:
            reasons = "; ".join(
                f"version {v}: {r}" for v, r in sorted(entry.unavailable.items(), reverse=True)
            )
            entry.error = f"no version is ready ({reasons or f'no version folders in {model_dir}'})"
        return entry

    def _load(
        self, config: ServedConfig, version: int, path: Path, fingerprint: tuple[Any, ...]
    ) -> LoadedVersion:
        options = ort.SessionOptions()
        if self.session_threads:
            options.intra_op_num_threads = self.session_threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except ORT_ERRORS as exc:
            raise LoadFailure(str(exc).strip()) from exc
        inputs = _tensors(config, config.inputs, session.get_inputs(), "input")
        outputs = _tensors(config, config.outputs, session.get_outputs(), "output")
        loaded = LoadedVersion(version, session, inputs, outputs, fingerprint)
        _warm_up(loaded)
        return loaded


def _config_problem(name: str, config: ServedConfig) -> str | None:
    if config.name and config.name != name:
        return f"config.pbtxt names the model {config.name!r} but its directory is {name!r}"
    if config.platform not in ("", ONNX_PLATFORM) or config.backend not in ("", ONNX_BACKEND):
        return (
            f"platform {config.platform or config.backend!r} is not served here: cvcycle serve runs "
            f"{ONNX_PLATFORM} models on ONNX Runtime (serve the others with NVIDIA Triton)"
        )
    if not config.platform and not config.backend:
        return 'config.pbtxt sets neither platform nor backend; set platform: "onnxruntime_onnx"'
    return None


def _graph_shape(node: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)


def _tensors(
    config: ServedConfig, declared: tuple[ConfigTensor, ...], graph: list[Any], role: str
) -> tuple[TensorMeta, ...]:
    """The tensors clients use: as declared in the config, checked against the graph."""
    by_name = {node.name: node for node in graph}
    if not declared:
        return tuple(TensorMeta(n.name, ORT_DATATYPES.get(n.type, n.type), _graph_shape(n)) for n in graph)
    batch = (-1,) if config.max_batch_size > 0 else ()
    out = []
    for tensor in declared:
        node = by_name.get(tensor.name)
        if node is None:
            raise LoadFailure(
                f"config.pbtxt declares {role} {tensor.name!r} but the model's {role}s are "
                f"{', '.join(by_name)}"
            )
        datatype = ORT_DATATYPES.get(node.type, node.type)
        if datatype != tensor.datatype:
            raise LoadFailure(
                f"config.pbtxt declares {role} {tensor.name!r} as {tensor.datatype} "
                f"but the model has {datatype}"
            )
        if datatype not in NUMPY_DTYPES:
            raise LoadFailure(
                f"{role} {tensor.name!r} has datatype {datatype}, which cvcycle serve cannot move"
            )
        model_shape = batch + (tensor.reshape if tensor.reshape is not None else tensor.dims)
        if not _compatible(model_shape, _graph_shape(node)):
            raise LoadFailure(
                f"config.pbtxt gives {role} {tensor.name!r} the shape {list(model_shape)} "
                f"(max_batch_size {config.max_batch_size}) but the model has {list(_graph_shape(node))}"
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


def _warm_up(loaded: LoadedVersion) -> None:
    """One inference on zeros of batch 1, so that the first request does not pay for the first run.

    Only where every other dimension is known; a failure is logged, not fatal, since zeros are not
    data and a graph may rightly refuse them.
    """
    feeds = {}
    for tensor in loaded.inputs:
        shape = tuple(1 if d == -1 and i == 0 else d for i, d in enumerate(tensor.graph_shape))
        if any(d < 0 for d in shape):
            return  # a dynamic dimension besides the batch: no size to warm up with
        feeds[tensor.name] = np.zeros(shape, NUMPY_DTYPES[tensor.datatype])
    try:
        loaded.session.run(None, feeds)
    except ORT_ERRORS as exc:
        log.warning("warm-up inference of version %d failed: %s", loaded.version, str(exc).strip())
