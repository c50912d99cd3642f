"""``OnnxPredictor``: a ``Predictor`` on ONNX Runtime for graphs that follow the detector contract.

It shares ``prepare_batch`` and ``to_detections`` with every other runtime, so the same frames give
the same detections in PyTorch, here, and through the inference server. No torch import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from cvcycle.errors import InvalidInput
from cvcycle.models.detections import Detections
from cvcycle.models.predictor import prepare_batch, to_detections

OUTPUTS = ("boxes", "scores", "classes")


class OnnxPredictor:
    """Detections from an ONNX detector (input ``images``; outputs ``boxes``, ``scores``, ``classes``)."""

    def __init__(
        self,
        onnx_model: str | Path | bytes,
        classes: Sequence[str],
        input_size: tuple[int, int],
        providers: Sequence[str] | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
        self.session = ort.InferenceSession(source, providers=list(providers or ["CPUExecutionProvider"]))
        inputs = self.session.get_inputs()
        outputs = {o.name for o in self.session.get_outputs()}
        missing = [name for name in OUTPUTS if name not in outputs]
        if len(inputs) != 1 or missing:
            raise InvalidInput(
                f"the ONNX graph does not follow the detector contract: inputs "
                f"{[i.name for i in inputs]}, outputs {sorted(outputs)}",
                hint="a detector takes one input (images) and returns boxes, scores and classes",
            )
        self.input_name = inputs[0].name

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.0) -> list[Detections]:
        if not images:
            return []
        batch, scales = prepare_batch(images, self.input_size)
        boxes, scores, classes = self.session.run(list(OUTPUTS), {self.input_name: batch})
        return to_detections(boxes, scores, classes, scales, self.classes, threshold)
