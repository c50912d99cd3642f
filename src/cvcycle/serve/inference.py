"""Answering the protocol from the repository: which version a request means, metadata, and inference.

Every refusal names its real cause: the unknown model and the models there are, the version and
why it is not loaded, the input and what the model expected instead of what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from cvcycle.serve.protocol import InferRequest, OutputTensor, ProtocolError
from cvcycle.serve.repository import ORT_ERRORS, LoadedVersion, ModelEntry, ModelRepository, TensorMeta


def find_model(repository: ModelRepository, name: str) -> ModelEntry:
    entry = repository.models.get(name)
    if entry is None:
        known = ", ".join(sorted(repository.models)) or "no models"
        raise ProtocolError(f"unknown model {name!r}: the repository {repository.root} has {known}", 404)
    return entry


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


def run_inference(entry: ModelEntry, loaded: LoadedVersion, request: InferRequest) -> list[OutputTensor]:
    """Check the inputs against the model, run ONNX Runtime, return the requested outputs."""
    where = f"model {entry.name!r} version {loaded.version}"
    expected = {t.name: t for t in loaded.inputs}
    max_batch = entry.config.max_batch_size if entry.config else 0
    feeds: dict[str, np.ndarray] = {}
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
        if max_batch > 0 and got[0] > max_batch:
            raise ProtocolError(
                f"input {tensor.name!r} of {where}: batch size {got[0]} exceeds max_batch_size {max_batch}"
            )
        array = tensor.array
        if spec.reshape is not None:
            array = array.reshape(got[:1] + spec.reshape if spec.batched else spec.reshape)
        feeds[tensor.name] = array
    missing = [name for name in expected if name not in feeds]
    if missing:
        raise ProtocolError(f"{where} needs input {', '.join(repr(m) for m in missing)}, not in the request")
    outputs = {t.name: t for t in loaded.outputs}
    wanted = request.outputs if request.outputs is not None else list(outputs)
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise ProtocolError(
            f"{where} has no output {', '.join(repr(u) for u in unknown)}; "
            f"its outputs are {', '.join(outputs)}"
        )
    try:
        results = loaded.session.run(wanted, feeds)
    except ort_state.InvalidArgument as exc:
        raise ProtocolError(f"{where} rejected the inputs: {str(exc).strip()}", 400) from exc
    except ORT_ERRORS as exc:
        raise ProtocolError(f"{where} failed to run: {str(exc).strip()}", 500) from exc
    out = []
    batch = next(iter(feeds.values())).shape[0] if feeds and max_batch > 0 else None
    for name, array in zip(wanted, results, strict=True):
        spec = outputs[name]
        if spec.reshape is not None:
            dims = spec.shape[1:] if spec.batched else spec.shape
            array = array.reshape(((batch,) if batch is not None else ()) + dims)
        out.append(OutputTensor(name, spec.datatype, np.asarray(array)))
    return out
