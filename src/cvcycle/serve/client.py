"""``ServedPredictor``: a ``Predictor`` that asks a KServe v2 server (``cvcycle serve`` or Triton).

Images go through the same ``prepare_batch`` / ``to_detections`` as every other runtime, as binary
tensors over HTTP. The input size comes from the model's metadata, the class list from the
``classes`` parameter that ``cvcycle publish`` writes into config.pbtxt (or from the caller).
``last_version`` says which model version answered the latest request, so a caller sees a newly
published version take over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from cvcycle.errors import CvcycleError, InvalidInput, NotFound
from cvcycle.models.detections import Detections
from cvcycle.models.predictor import prepare_batch, to_detections
from cvcycle.serve.protocol import NUMPY_DTYPES

OUTPUTS = ("boxes", "scores", "classes")


class ServedPredictor:
    """Detections from a detector served over the KServe v2 HTTP protocol."""

    def __init__(
        self,
        url: str,
        model: str,
        version: str | None = None,
        *,
        classes: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url if "://" in url else f"http://{url}"
        self.model = model
        self.version = version
        self.last_version: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self._infer_path = f"{base}/infer"
        metadata = self._get(base)
        config = self._get(f"{base}/config")
        inputs = metadata.get("inputs", [])
        if len(inputs) != 1 or len(inputs[0].get("shape", [])) != 4:
            raise InvalidInput(
                f"model {model!r} at {self.url} does not take one image batch (B, 3, H, W): inputs {inputs}",
            )
        self.input_name = inputs[0]["name"]
        self.input_size = (int(inputs[0]["shape"][2]), int(inputs[0]["shape"][3]))
        self.max_batch_size = int(config.get("max_batch_size", 0)) or 1
        if classes is None:
            text = config.get("parameters", {}).get("classes", {}).get("string_value")
            if text is None:
                raise InvalidInput(
                    f"model {model!r} at {self.url} does not say its classes",
                    hint="pass classes=..., or publish with `cvcycle publish`, which records them",
                )
            classes = json.loads(text)
        self.classes = tuple(classes)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServedPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.0) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(images), self.max_batch_size):
            chunk = images[start : start + self.max_batch_size]
            batch, scales = prepare_batch(chunk, self.input_size)
            boxes, scores, classes = self._infer(batch)
            out += to_detections(boxes, scores, classes, scales, self.classes, threshold)
        return out

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        data = np.ascontiguousarray(batch, "<f4").tobytes()
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": self.input_name,
                        "shape": list(batch.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": len(data)},
                    }
                ],
                "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in OUTPUTS],
            }
        ).encode()
        response = self._request(
            "POST",
            self._infer_path,
            content=header + data,
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
        length = int(response.headers.get("Inference-Header-Content-Length", len(response.content)))
        meta = json.loads(response.content[:length])
        self.last_version = meta.get("model_version")
        arrays = {}
        offset = length
        for output in meta["outputs"]:
            dtype = NUMPY_DTYPES[output["datatype"]]
            size = output.get("parameters", {}).get("binary_data_size")
            if size is None:
                array = np.asarray(output["data"], dtype)
            else:
                array = np.frombuffer(response.content, dtype, count=size // dtype.itemsize, offset=offset)
                offset += size
            arrays[output["name"]] = array.reshape(output["shape"])
        return [arrays[name] for name in OUTPUTS]

    def _get(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", path).json()
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise NotFound(
                f"no inference server answers at {self.url}: {exc}",
                hint="start one with `cvcycle serve --repo DIR`",
            ) from exc
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except json.JSONDecodeError:
                message = response.text
            error = NotFound if response.status_code == 404 else CvcycleError
            raise error(f"{self.url} answered {response.status_code}: {message}")
        return response
