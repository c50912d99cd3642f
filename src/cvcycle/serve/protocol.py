"""The KServe v2 inference protocol over HTTP: request and response bodies, JSON and binary tensors.

A request body is a JSON header, optionally followed by raw tensor bytes (the binary tensor data
extension): the ``Inference-Header-Content-Length`` header gives the JSON's length, and each input
sent as bytes says how many in ``parameters.binary_data_size``, in input order. Outputs come back
as bytes when the request asks (``binary_data`` per output, or ``binary_data_output`` for all),
the same way round. Tensor bytes are little-endian, row-major; BOOL is one byte per element;
BYTES elements are each a 4-byte little-endian length and that many bytes (in JSON, strings).
BYTES tensors are held as object arrays of ``str``, since ONNX Runtime's string tensors hold text.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvcycle.errors import CvcycleError

#: Protocol datatype -> numpy dtype (little-endian) for every type the server moves.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

#: ONNX Runtime's type strings -> protocol datatype.
ORT_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
    "tensor(bfloat16)": "BF16",
}

HEADER_LENGTH = "inference-header-content-length"


class ProtocolError(CvcycleError):
    """A request the server cannot answer, with the HTTP status and the message for ``{"error": ...}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = status


DATATYPES = (*NUMPY_DTYPES, "BYTES")

#: Tensor parameters of Triton extensions this server does not implement -> the extension's name.
UNSUPPORTED_PARAMETERS = {
    "shared_memory_region": "shared memory (system and CUDA)",
    "classification": "classification",
}


def refuse_unsupported(parameters: Any, what: str) -> None:
    """ProtocolError naming the extension when a tensor asks for one the server does not have."""
    for key, extension in UNSUPPORTED_PARAMETERS.items():
        if key in parameters:
            raise ProtocolError(
                f"{what} asks for {key!r}: the {extension} extension is not supported by cvcycle serve; "
                "send the tensor in the request"
                + (" and classify on the client" if key == "classification" else "")
            )


def deserialize_bytes(buffer: bytes | memoryview, count: int, what: str) -> np.ndarray:
    """``count`` length-prefixed elements as an object array of str; ProtocolError if they do not fit."""
    view = memoryview(buffer)
    items: list[str] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(view):
            raise ProtocolError(f"{what}: BYTES data ends after {len(items)} of {count} elements")
        size = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(view):
            raise ProtocolError(f"{what}: BYTES element {len(items)} says {size} bytes but the data ends")
        try:
            items.append(bytes(view[offset : offset + size]).decode())
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"{what}: BYTES element {len(items)} is not UTF-8 text, which ONNX Runtime strings need"
            ) from exc
        offset += size
    if offset != len(view):
        raise ProtocolError(f"{what}: {len(view) - offset} bytes left over after {count} BYTES elements")
    array = np.empty(count, object)
    array[:] = items
    return array


def serialize_bytes(array: np.ndarray) -> bytes:
    """An array of str or bytes as length-prefixed elements, row-major."""
    chunks = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        chunks += [len(data).to_bytes(4, "little"), data]
    return b"".join(chunks)


def text_array(values: Any, what: str) -> np.ndarray:
    """JSON BYTES data (strings) as an object array of str."""
    flat = np.asarray(values, dtype=object).reshape(-1)
    array = np.empty(flat.size, object)
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            item = item.decode(errors="replace")
        elif not isinstance(item, str):
            raise ProtocolError(f"{what}: BYTES 'data' must hold strings, got {item!r}")
        array[i] = item
    return array


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass
class InferRequest:
    id: str | None
    inputs: list[InputTensor]
    outputs: list[str] | None  # None: every output
    binary_outputs: dict[str, bool] = field(default_factory=dict)  # as requested per output
    binary_default: bool = False  # parameters.binary_data_output

    def wants_binary(self, output: str) -> bool:
        return self.binary_outputs.get(output, self.binary_default)


#: Triton's ``--http-max-input-size`` default: the largest request body, before and after decompression.
MAX_INPUT_BYTES = 64 * 2**20


def too_large(size: str, limit: int) -> ProtocolError:
    """The refusal of a body over ``limit`` bytes, naming the limit and the flag that sets it."""
    return ProtocolError(
        f"the request body {size} exceeds the limit of {limit} bytes (the server's --http-max-input-size)"
    )


def decode_body(body: bytes, content_encoding: str | None, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The body as sent, gzip or deflate undone a piece at a time: refused past ``limit`` bytes.

    A small compressed body can expand a thousandfold; it is never inflated further than the limit.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise ProtocolError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out = bytearray()
    pending = body
    try:
        while True:  # one round per gzip member (a gzip body may be several, concatenated)
            inflater = zlib.decompressobj(wbits)
            while pending:
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise too_large("decompressed", limit)
                pending = inflater.unconsumed_tail
            if not inflater.eof:
                raise ProtocolError(f"the request body is not valid {encoding} data: it ends too soon")
            pending = inflater.unused_data
            if encoding != "gzip" or not pending:
                break
    except zlib.error as exc:
        raise ProtocolError(f"the request body is not valid {encoding} data: {exc}") from exc
    return bytes(out)


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer request: the JSON header and, after it, the binary inputs."""
    if header_length is not None:
        try:
            json_size = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length!r} is not a number"
            ) from None
        if not 0 < json_size <= len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {json_size} does not fit a body of {len(body)} bytes"
            )
    else:
        json_size = len(body)
    try:
        header = json.loads(body[:json_size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("the request header must be a JSON object")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("the request has no 'inputs' list")
    binary = memoryview(body)[json_size:]
    offset = 0
    inputs = []
    seen: set[str] = set()
    for raw in raw_inputs:
        tensor, used = _parse_input(raw, binary, offset)
        if tensor.name in seen:
            raise ProtocolError(f"input {tensor.name!r} appears twice in the request")
        seen.add(tensor.name)
        offset += used
        inputs.append(tensor)
    if offset != len(binary):
        raise ProtocolError(
            f"the request carries {len(binary)} bytes of binary data but its inputs' "
            f"binary_data_size add up to {offset}"
        )
    parameters = _parameters(header, "the request")
    outputs = None
    binary_outputs: dict[str, bool] = {}
    if header.get("outputs") is not None:
        outputs = []
        for raw in header["outputs"]:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise ProtocolError("every requested output needs a 'name'")
            outputs.append(raw["name"])
            output_parameters = _parameters(raw, f"output {raw['name']!r}")
            refuse_unsupported(output_parameters, f"output {raw['name']!r}")
            flag = output_parameters.get("binary_data")
            if flag is not None:
                binary_outputs[raw["name"]] = bool(flag)
    request_id = header.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_default=bool(parameters.get("binary_data_output", False)),
    )


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"the parameters of {what} must be a JSON object, got {parameters!r}")
    return parameters


def _parse_input(raw: Any, binary: memoryview, offset: int) -> tuple[InputTensor, int]:
    if not isinstance(raw, dict):
        raise ProtocolError("every input must be a JSON object with name, shape, datatype")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ProtocolError("an input has no 'name'")
    datatype = raw.get("datatype")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(
            f"input {name!r}: datatype {datatype!r} is not supported; supported: {', '.join(DATATYPES)}"
        )
    count = math.prod(shape)
    input_parameters = _parameters(raw, f"input {name!r}")
    refuse_unsupported(input_parameters, f"input {name!r}")
    size = input_parameters.get("binary_data_size")
    if datatype == "BYTES":
        return _parse_bytes_input(raw, name, shape, count, size, binary, offset)
    dtype = NUMPY_DTYPES[datatype]
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"input {name!r}: binary_data_size must be a byte count, got {size!r}")
        expected = count * dtype.itemsize
        if size != expected:
            raise ProtocolError(
                f"input {name!r}: binary_data_size {size} does not match shape {shape} of {datatype} "
                f"({expected} bytes)"
            )
        if offset + size > len(binary):
            raise ProtocolError(f"input {name!r}: the body ends before its {size} bytes of binary data")
        chunk = binary[offset : offset + size]
        # BOOL travels as one byte per element; any non-zero byte is true.
        array = np.frombuffer(chunk, np.uint8) != 0 if datatype == "BOOL" else np.frombuffer(chunk, dtype)
        return InputTensor(name, datatype, tuple(shape), array.reshape(shape)), size
    if "data" not in raw:
        raise ProtocolError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    try:
        array = np.asarray(raw["data"], dtype=dtype).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"input {name!r}: 'data' is not a list of {datatype} values: {exc}") from exc
    if array.size != count:
        raise ProtocolError(f"input {name!r}: shape {shape} needs {count} values, 'data' has {array.size}")
    return InputTensor(name, datatype, tuple(shape), array.reshape(shape)), 0


def _parse_bytes_input(
    raw: dict[str, Any], name: str, shape: list[int], count: int, size: Any, binary: memoryview, offset: int
) -> tuple[InputTensor, int]:
    what = f"input {name!r}"
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"{what}: binary_data_size must be a byte count, got {size!r}")
        if offset + size > len(binary):
            raise ProtocolError(f"{what}: the body ends before its {size} bytes of binary data")
        array = deserialize_bytes(binary[offset : offset + size], count, what)
        return InputTensor(name, "BYTES", tuple(shape), array.reshape(shape)), size
    if "data" not in raw:
        raise ProtocolError(f"{what} has neither 'data' nor parameters.binary_data_size")
    array = text_array(raw["data"], what)
    if array.size != count:
        raise ProtocolError(f"{what}: shape {shape} needs {count} values, 'data' has {array.size}")
    return InputTensor(name, "BYTES", tuple(shape), array.reshape(shape)), 0


@dataclass
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray


def tensor_bytes(datatype: str, array: np.ndarray) -> bytes:
    """A tensor's raw bytes as the protocol carries them."""
    if datatype == "BYTES":
        return serialize_bytes(array)
    if datatype == "BOOL":
        return np.ascontiguousarray(array).astype(np.uint8).tobytes()
    return np.ascontiguousarray(array, NUMPY_DTYPES[datatype]).tobytes()


def tensor_from_bytes(name: str, datatype: str, shape: tuple[int, ...], data: bytes) -> InputTensor:
    """An input from raw bytes (gRPC ``raw_input_contents``); ProtocolError if the sizes disagree."""
    count = math.prod(shape)
    what = f"input {name!r}"
    if datatype == "BYTES":
        return InputTensor(name, datatype, shape, deserialize_bytes(data, count, what).reshape(shape))
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise ProtocolError(
            f"{what}: datatype {datatype!r} is not supported; supported: {', '.join(DATATYPES)}"
        )
    if len(data) != count * dtype.itemsize:
        raise ProtocolError(
            f"{what}: {len(data)} bytes of raw data do not match shape {list(shape)} of {datatype} "
            f"({count * dtype.itemsize} bytes)"
        )
    array = np.frombuffer(data, np.uint8) != 0 if datatype == "BOOL" else np.frombuffer(data, dtype)
    return InputTensor(name, datatype, shape, array.reshape(shape))


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[OutputTensor],
    binary: Callable[[str], bool],
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; binary outputs follow the JSON header, in output order."""
    entries = []
    chunks = []
    for out in outputs:
        array = np.ascontiguousarray(out.array)
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(array.shape)}
        if binary(out.name):
            data = tensor_bytes(out.datatype, array)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        elif out.datatype == "BYTES":
            entry["data"] = [
                item.decode(errors="replace") if isinstance(item, bytes) else str(item)
                for item in array.reshape(-1)
            ]
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request_id is not None:
        response["id"] = request_id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return b"".join([header, *chunks]), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


#: Bodies shorter than this go uncompressed whatever the client accepts: gzip would make them no
#: shorter on the wire (its header and trailer alone are 18 bytes) and costs more than sending them.
COMPRESS_FROM_BYTES = 1024


def encode_response_body(body: bytes, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """Compress the response as the client accepts (gzip or deflate), as Triton does, from 1 KiB up."""
    if len(body) < COMPRESS_FROM_BYTES:
        return body, {}
    accepted = {part.split(";")[0].strip().lower() for part in (accept_encoding or "").split(",")}
    if "gzip" in accepted:
        return gzip.compress(body, compresslevel=1), {"content-encoding": "gzip"}
    if "deflate" in accepted:
        return zlib.compress(body, 1), {"content-encoding": "deflate"}
    return body, {}
