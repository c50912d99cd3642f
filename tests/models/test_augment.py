"""The detector's training augmentation: boxes follow the pixels, and the training window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvcycle.models.augment import Batch, random_crop
from cvcycle.models.detector import train_crop_size
from cvcycle.train.config import TrainConfig


def _marked_batch() -> Batch:
    """Two 64x96 images, each with one box whose pixels (and only those) are 1."""
    images = torch.zeros(2, 3, 64, 96)
    boxes = [np.array([[10, 20, 30, 50]], np.float32), np.array([[60, 8, 90, 40]], np.float32)]
    for image, (box,) in zip(images, boxes, strict=True):
        x0, y0, x1, y1 = box.astype(int)
        image[:, y0:y1, x0:x1] = 1.0
    return Batch(images, boxes, [np.array([0]), np.array([1])])


def test_a_random_crop_moves_the_boxes_with_the_pixels() -> None:
    batch = _marked_batch()
    for seed in range(20):
        cropped = random_crop(batch, (32, 64), torch.Generator().manual_seed(seed))
        assert cropped.images.shape == (2, 3, 32, 64)
        for image, boxes, classes, original in zip(
            cropped.images, cropped.boxes, cropped.classes, batch.classes, strict=True
        ):
            marked = image[0] > 0.5
            if len(boxes) == 0:
                continue  # less than half of the box stayed in the window
            (x0, y0, x1, y1), (cls,) = boxes[0].astype(int), classes
            assert cls == original[0]
            assert bool(marked[y0:y1, x0:x1].all()), "the box covers marked pixels"
            assert int(marked.sum()) == (x1 - x0) * (y1 - y0), "and no marked pixel lies outside it"


def test_a_crop_of_the_whole_image_changes_nothing_and_a_larger_one_is_refused() -> None:
    batch = _marked_batch()
    assert random_crop(batch, (64, 96), torch.Generator()) is batch
    with pytest.raises(ValueError, match="does not fit"):
        random_crop(batch, (96, 96), torch.Generator())


@pytest.mark.parametrize(
    ("options", "size", "window"),
    [
        ({}, (160, 224), (128, 160)),  # the default share, 0.8, rounded down to multiples of 32
        ({"train_crop": 1}, (160, 224), (160, 224)),
        ({"train_crop": 0.1}, (160, 224), (32, 32)),  # never below one stride-32 cell
    ],
)
def test_the_training_window_is_a_share_of_the_input_in_multiples_of_32(
    options: dict[str, float], size: tuple[int, int], window: tuple[int, int]
) -> None:
    assert train_crop_size(TrainConfig(input_size=size, options=options)) == window
