"""The gRPC front end: Triton's ``inference.GRPCInferenceService`` over the model repository.

The messages and the service stub are the ones ``tritonclient`` ships (``service_pb2``,
``service_pb2_grpc``, ``model_config_pb2``), so ``tritonclient.grpc`` works unchanged. Inputs come
as ``raw_input_contents`` or typed ``contents``; outputs go back as ``raw_output_contents``, as
Triton sends them. Errors carry the same messages as over HTTP, in the status details, with the
status code matching the HTTP status. Messages are bounded each way (``--grpc-max-message-size``,
64 MiB by default); gRPC refuses a larger one with RESOURCE_EXHAUSTED before it is read whole.
The categories restricted by ``--grpc-restricted-protocol`` are checked in one interceptor.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
import numpy as np
from google.protobuf import json_format, text_format  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2, service_pb2_grpc  # type: ignore[import-untyped]

from cvcycle.errors import CvcycleError, InvalidInput
from cvcycle.serve.app import load_config_parameter, server_metadata, statistics_of
from cvcycle.serve.inference import find_model, find_version, infer, model_metadata, resolve
from cvcycle.serve.protocol import (
    MAX_INPUT_BYTES,
    NUMPY_DTYPES,
    InferRequest,
    InputTensor,
    ProtocolError,
    refuse_unsupported,
    tensor_bytes,
    tensor_from_bytes,
    text_array,
)
from cvcycle.serve.repository import ModelRepository
from cvcycle.serve.restricted import Restriction

log = logging.getLogger("cvcycle.serve")

_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}

#: Datatype -> the ``InferTensorContents`` field that carries it when not sent raw.
_CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

T = TypeVar("T")


def _parameter_value(parameter: Any) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, choice) if choice else None


def parse_grpc_request(request: Any) -> InferRequest:
    """A ``ModelInferRequest`` as the protocol-neutral request the server runs."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"the request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents; "
            "send every input raw or none"
        )
    inputs = []
    seen: set[str] = set()
    for i, tensor in enumerate(request.inputs):
        if tensor.name in seen:
            raise ProtocolError(f"input {tensor.name!r} appears twice in the request")
        seen.add(tensor.name)
        refuse_unsupported(tensor.parameters, f"input {tensor.name!r}")
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            raise ProtocolError(f"input {tensor.name!r}: shape {list(shape)} has a negative dimension")
        if raw:
            inputs.append(tensor_from_bytes(tensor.name, tensor.datatype, shape, raw[i]))
        else:
            inputs.append(_from_contents(tensor, shape))
    for output in request.outputs:
        refuse_unsupported(output.parameters, f"output {output.name!r}")
    outputs = [output.name for output in request.outputs] or None
    return InferRequest(id=request.id or None, inputs=inputs, outputs=outputs)


def _from_contents(tensor: Any, shape: tuple[int, ...]) -> InputTensor:
    field = _CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise ProtocolError(
            f"input {tensor.name!r}: datatype {tensor.datatype!r} travels only in raw_input_contents"
        )
    values = list(getattr(tensor.contents, field))
    count = math.prod(shape)
    if len(values) != count:
        raise ProtocolError(
            f"input {tensor.name!r}: shape {list(shape)} needs {count} values, got {len(values)}"
        )
    what = f"input {tensor.name!r}"
    if tensor.datatype == "BYTES":
        array = text_array(values, what)
    else:
        try:
            array = np.asarray(values, NUMPY_DTYPES[tensor.datatype])
        except (OverflowError, ValueError) as exc:
            raise ProtocolError(f"{what}: values do not fit {tensor.datatype}: {exc}") from exc
    return InputTensor(tensor.name, tensor.datatype, shape, array.reshape(shape))


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Triton's gRPC service on a model repository; the methods not listed answer UNIMPLEMENTED."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    async def _answer(self, context: Any, call: Callable[[], Any]) -> Any:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except CvcycleError as exc:
            await context.abort(_STATUS_CODES.get(exc.http_status, grpc.StatusCode.INTERNAL), exc.message)
        except Exception as exc:  # an unexpected failure still answers, with its cause
            log.exception("gRPC call failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=self.repository.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            resolve(self.repository, request.name, request.version)
        except CvcycleError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerMetadataResponse(**server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            entry = find_model(self.repository, request.name)
            loaded = find_version(entry, request.version)
            metadata = model_metadata(entry, loaded, bool(request.version))
            return json_format.ParseDict(metadata, service_pb2.ModelMetadataResponse())

        return await self._answer(context, answer)

    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            entry = find_model(self.repository, request.name)
            find_version(entry, request.version)
            if entry.config is None:
                raise ProtocolError(f"model {entry.name!r} has no readable config.pbtxt: {entry.error}", 503)
            response = service_pb2.ModelConfigResponse()
            text_format.Parse(entry.config.text, response.config)
            return response

        return await self._answer(context, answer)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            stats = statistics_of(self.repository, request.name, request.version)
            return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())

        return await self._answer(context, answer)

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def answer() -> Any:
            parsed = parse_grpc_request(request)
            loaded, outputs = await infer(self.repository, request.model_name, request.model_version, parsed)
            response = service_pb2.ModelInferResponse(
                model_name=loaded.model, model_version=str(loaded.version), id=request.id
            )
            for output in outputs:
                response.outputs.add(name=output.name, datatype=output.datatype, shape=output.array.shape)
                response.raw_output_contents.append(tensor_bytes(output.datatype, output.array))
            return response

        return await self._answer(context, answer)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        rows = self.repository.index(ready_only=request.ready)
        response = service_pb2.RepositoryIndexResponse()
        for row in rows:
            response.models.add(name=row.name, version=row.version, state=row.state, reason=row.reason)
        return response

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def answer() -> Any:
            parameters = {key: _parameter_value(value) for key, value in request.parameters.items()}
            override = load_config_parameter(parameters)
            await asyncio.to_thread(self.repository.load, request.model_name, override)
            return service_pb2.RepositoryModelLoadResponse()

        return await self._answer(context, answer)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def answer() -> Any:
            await asyncio.to_thread(self.repository.unload, request.model_name)
            return service_pb2.RepositoryModelUnloadResponse()

        return await self._answer(context, answer)


#: Each method of the service -> its API category (``--grpc-restricted-protocol``).
METHOD_CATEGORIES = {
    "ServerLive": "health",
    "ServerReady": "health",
    "ModelReady": "health",
    "ServerMetadata": "metadata",
    "ModelMetadata": "metadata",
    "ModelInfer": "inference",
    "ModelStreamInfer": "inference",
    "ModelConfig": "model-config",
    "ModelStatistics": "statistics",
    "RepositoryIndex": "model-repository",
    "RepositoryModelLoad": "model-repository",
    "RepositoryModelUnload": "model-repository",
    "SystemSharedMemoryStatus": "shared-memory",
    "SystemSharedMemoryRegister": "shared-memory",
    "SystemSharedMemoryUnregister": "shared-memory",
    "CudaSharedMemoryStatus": "shared-memory",
    "CudaSharedMemoryRegister": "shared-memory",
    "CudaSharedMemoryUnregister": "shared-memory",
    "TraceSetting": "trace",
    "LogSettings": "logging",
}
_SERVICE = "/inference.GRPCInferenceService/"


class RestrictedProtocols(grpc.aio.ServerInterceptor):
    """The one check of ``--grpc-restricted-protocol``: PERMISSION_DENIED without the metadata key."""

    def __init__(self, restricted: Mapping[str, Restriction]) -> None:
        self._by_method = {
            _SERVICE + method: restricted[category]
            for method, category in METHOD_CATEGORIES.items()
            if category in restricted
        }

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        restriction = self._by_method.get(details.method)
        if restriction is None or handler is None:
            return handler
        given = next((v for k, v in details.invocation_metadata or () if k == restriction.header), None)
        try:
            restriction.check(given if isinstance(given, str) else None)
        except ProtocolError as exc:
            return _refusing(handler, exc.message)
        return handler


def _refusing(handler: Any, message: str) -> Any:
    """A handler of the same kind as ``handler`` that answers PERMISSION_DENIED with ``message``."""

    async def deny(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(
        deny,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (less CPU per call than asyncio's), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # not built for Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class GrpcServer:
    """The gRPC service on its own event loop in a background thread."""

    def __init__(
        self,
        repository: ModelRepository,
        host: str,
        port: int,
        max_message_size: int = MAX_INPUT_BYTES,
        *,
        restricted: Mapping[str, Restriction] | None = None,
    ) -> None:
        self.repository = repository
        self.restricted = dict(restricted or {})
        self.max_message_size = max_message_size
        self.address = f"{host}:{port}"
        self._loop = new_event_loop()
        self._server: Any = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._grace = 5.0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="grpc", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise InvalidInput(f"cannot serve gRPC on {self.address}: {self._error}") from self._error

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, give those in flight ``grace`` seconds, and end the thread."""
        self._grace = grace
        if self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=grace + 5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        options = [
            ("grpc.max_send_message_length", self.max_message_size),
            ("grpc.max_receive_message_length", self.max_message_size),
        ]
        try:
            # No interceptor at all while nothing is restricted: calls pay for none.
            interceptors = [RestrictedProtocols(self.restricted)] if self.restricted else []
            self._server = grpc.aio.server(options=options, interceptors=interceptors)
            service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                InferenceService(self.repository), self._server
            )
            if self._server.add_insecure_port(self.address) == 0:
                raise OSError(f"the port of {self.address} is taken or not bindable")
            await self._server.start()
        except (OSError, RuntimeError) as exc:
            self._error = exc
            self._started.set()
            return
        self._stopping = asyncio.Event()
        self._started.set()
        await self._stopping.wait()
        await self._server.stop(self._grace)
