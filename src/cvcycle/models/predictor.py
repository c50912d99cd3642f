"""What evaluation, serving clients and the demo need of any model: images in, ``Detections`` out.

The detector contract shared by PyTorch, ONNX and the inference server: the input tensor
``images`` is float32 (B, 3, H, W), RGB scaled to [0, 1], resized to the model's input size; the
outputs are ``boxes`` (B, K, 4) float32 xyxy in input pixels, ``scores`` (B, K) float32 and
``classes`` (B, K) int64, K the most detections per image (padding rows score 0). ``prepare_batch``
and ``to_detections`` are the only pre- and post-processing, so every runtime agrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from cvcycle.models.detections import Detections


@runtime_checkable
class Predictor(Protocol):
    """Anything that finds boxes in RGB images (HxWx3 uint8)."""

    classes: tuple[str, ...]

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.0) -> list[Detections]:
        """Detections per image, in that image's pixel coordinates, scoring at least ``threshold``."""
        ...


def prepare_batch(images: Sequence[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` (height, width) and stack as float32 (B, 3, H, W) in [0, 1].

    Returns the batch and per-image (sx, sy) factors that map input pixels back to the image.
    """
    height, width = size
    batch = np.empty((len(images), 3, height, width), np.float32)
    scales = np.empty((len(images), 2), np.float32)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        if (h, w) != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
        batch[i] = image.transpose(2, 0, 1).astype(np.float32) / 255.0
        scales[i] = (w / width, h / height)
    return batch, scales


def to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    scales: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.0,
) -> list[Detections]:
    """Turn model outputs (B, K, ...) into one ``Detections`` per image, in image pixels."""
    out = []
    for b in range(len(boxes)):
        keep = scores[b] > max(threshold, 0.0) if threshold <= 0 else scores[b] >= threshold
        xyxy = boxes[b][keep].astype(np.float32).copy()
        xyxy[:, [0, 2]] *= scales[b][0]
        xyxy[:, [1, 3]] *= scales[b][1]
        out.append(Detections(xyxy, scores[b][keep], classes[b][keep], tuple(class_names)))
    return out
