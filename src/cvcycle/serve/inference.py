"""Answering the protocol from the repository: which version a request means, metadata, and inference.

Shared by the HTTP and gRPC front ends. Every refusal names its real cause: the unknown model and
the models there are, the version and why it is not loaded, the input and what the model expected
instead of what came.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cvcycle.serve.protocol import InferRequest, OutputTensor, ProtocolError
from cvcycle.serve.repository import LoadedVersion, ModelEntry, ModelRepository, TensorMeta
from cvcycle.serve.scheduler import ExecutionError, VersionRetired

#: A request may meet a version just as a swap retires it; it then resolves the version again.
_RESOLVE_ATTEMPTS = 5


def find_model(repository: ModelRepository, name: str) -> ModelEntry:
    entry = repository.models.get(name)
    if entry is not None:
        return entry
    if not name.startswith(".") and "/" not in name and (repository.root / name).is_dir():
        why = (
            "it was unloaded"
            if repository.was_unloaded(name)
            else "the server runs with --model-control-mode explicit and nobody asked to load it"
        )
        raise ProtocolError(
            f"model {name!r} is in the repository but not loaded: {why}; "
            f"load it with POST /v2/repository/models/{name}/load",
            404,
        )
    known = ", ".join(sorted(d.name for d in repository.model_dirs())) or "no models"
    raise ProtocolError(f"unknown model {name!r}: the repository {repository.root} has {known}", 404)


def find_version(entry: ModelEntry, version: str | None) -> LoadedVersion:
    """The requested version, or the newest ready one; ProtocolError saying why it cannot serve."""
    if version is None or version == "":
        if not entry.ready:
            raise ProtocolError(f"model {entry.name!r} is not ready: {entry.error}", 503)
        return entry.ready[max(entry.ready)]
    if not version.isdigit():
        raise ProtocolError(f"model version {version!r} is not a number", 400)
    number = int(version)
    loaded = entry.ready.get(number)
    if loaded is not None:
        return loaded
    ready = ", ".join(map(str, sorted(entry.ready))) or "none"
    if number in entry.unavailable:
        raise ProtocolError(
            f"version {number} of model {entry.name!r} is not loaded: {entry.unavailable[number]} "
            f"(ready versions: {ready})",
            503,
        )
    on_disk = ", ".join(map(str, entry.on_disk)) or "none"
    raise ProtocolError(
        f"model {entry.name!r} has no version {number} (version folders: {on_disk}; ready: {ready})", 404
    )


def resolve(repository: ModelRepository, model: str, version: str | None) -> LoadedVersion:
    return find_version(find_model(repository, model), version)


def _tensor_json(tensor: TensorMeta) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


def model_metadata(entry: ModelEntry, loaded: LoadedVersion, version_given: bool) -> dict[str, Any]:
    return {
        "name": entry.name,
        "versions": [str(loaded.version)] if version_given else [str(v) for v in sorted(entry.ready)],
        "platform": entry.platform,
        "inputs": [_tensor_json(t) for t in loaded.inputs],
        "outputs": [_tensor_json(t) for t in loaded.outputs],
    }


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def prepare_feeds(
    loaded: LoadedVersion, request: InferRequest
) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """Check the request against the version: the feeds, the batch size and the outputs to return."""
    where = f"model {loaded.model!r} version {loaded.version}"
    expected = {t.name: t for t in loaded.inputs}
    max_batch = loaded.max_batch_size
    feeds: dict[str, np.ndarray] = {}
    batch_sizes = set()
    for tensor in request.inputs:
        spec = expected.get(tensor.name)
        if spec is None:
            raise ProtocolError(f"{where} has no input {tensor.name!r}; its inputs are {', '.join(expected)}")
        if tensor.datatype != spec.datatype:
            raise ProtocolError(
                f"input {tensor.name!r} of {where}: expected datatype {spec.datatype}, got {tensor.datatype}"
            )
        got = tensor.shape
        if len(got) != len(spec.shape) or any(e not in (-1, g) for e, g in zip(spec.shape, got, strict=True)):
            raise ProtocolError(
                f"input {tensor.name!r} of {where}: expected shape {_shape_text(spec.shape)} "
                f"(-1: any size), got {_shape_text(got)}"
            )
        if max_batch > 0:
            if got[0] > max_batch:
                raise ProtocolError(
                    f"input {tensor.name!r} of {where}: batch size {got[0]} "
                    f"exceeds max_batch_size {max_batch}"
                )
            batch_sizes.add(got[0])
        array = tensor.array
        if spec.reshape is not None:
            array = array.reshape(got[:1] + spec.reshape if spec.batched else spec.reshape)
        feeds[tensor.name] = array
    missing = [name for name in expected if name not in feeds]
    if missing:
        raise ProtocolError(f"{where} needs input {', '.join(repr(m) for m in missing)}, not in the request")
    if len(batch_sizes) > 1:
        raise ProtocolError(
            f"the inputs of {where} disagree on the batch size: {', '.join(map(str, sorted(batch_sizes)))}"
        )
    outputs = [t.name for t in loaded.outputs]
    wanted = request.outputs if request.outputs is not None else outputs
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise ProtocolError(
            f"{where} has no output {', '.join(repr(u) for u in unknown)}; "
            f"its outputs are {', '.join(outputs)}"
        )
    return feeds, batch_sizes.pop() if batch_sizes else 1, wanted


def _shape_outputs(
    loaded: LoadedVersion, results: dict[str, np.ndarray], wanted: list[str], batch: int
) -> list[OutputTensor]:
    specs = {t.name: t for t in loaded.outputs}
    out = []
    for name in wanted:
        spec = specs[name]
        array = results[name]
        if spec.reshape is not None:
            dims = spec.shape[1:] if spec.batched else spec.shape
            array = array.reshape(((batch,) if spec.batched else ()) + dims)
        out.append(OutputTensor(name, spec.datatype, np.asarray(array)))
    return out


async def infer(
    repository: ModelRepository, model: str, version: str | None, request: InferRequest
) -> tuple[LoadedVersion, list[OutputTensor]]:
    """Run one request on the version it names; counts it in that version's statistics."""
    started = time.perf_counter_ns()
    for _ in range(_RESOLVE_ATTEMPTS):
        loaded = resolve(repository, model, version)
        try:
            feeds, batch, wanted = prepare_feeds(loaded, request)
            future = loaded.scheduler.submit_async(feeds, batch)
        except VersionRetired:
            continue  # replaced a moment ago: the next resolve finds its successor
        except ProtocolError:
            loaded.statistics.record_request(False, time.perf_counter_ns() - started)
            raise
        try:
            results = await future
        except ExecutionError as exc:
            loaded.statistics.record_request(False, time.perf_counter_ns() - started)
            where = f"model {loaded.model!r} version {loaded.version}"
            raise ProtocolError(f"{where}: {exc.message}", 400 if exc.invalid_input else 500) from exc
        outputs = _shape_outputs(loaded, results, wanted, batch)
        loaded.statistics.record_request(True, time.perf_counter_ns() - started)
        return loaded, outputs
    raise ProtocolError(f"model {model!r} kept being replaced while the request waited; try again", 503)
