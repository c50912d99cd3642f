"""The detector's training augmentation: boxes follow the pixels, colours change by whole channels,
and the training window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvcycle.models.augment import BRIGHTNESS, COLOUR, Batch, colour_jitter, flip_zoom_shift
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


@pytest.mark.parametrize("size", [None, (32, 64)])
def test_flip_zoom_shift_moves_the_boxes_with_the_pixels(size: tuple[int, int] | None) -> None:
    batch = _marked_batch()
    kept = 0
    for seed in range(20):
        moved = flip_zoom_shift(batch, torch.Generator().manual_seed(seed), size)
        assert moved.images.shape == (2, 3, *(size or (64, 96)))
        for image, boxes, classes, original in zip(
            moved.images, moved.boxes, moved.classes, batch.classes, strict=True
        ):
            if len(boxes) == 0:
                continue  # less than half of the box stayed in the window
            kept += 1
            assert classes[0] == original[0]
            # Bilinear resampling blurs an edge over a pixel: the marked pixels (above half) span
            # the box to within one pixel on every side.
            ys, xs = np.nonzero((image[0] > 0.5).numpy())
            x0, y0, x1, y1 = boxes[0]
            assert abs(xs.min() - x0) <= 1 and abs(xs.max() + 1 - x1) <= 1, (seed, boxes[0])
            assert abs(ys.min() - y0) <= 1 and abs(ys.max() + 1 - y1) <= 1, (seed, boxes[0])
    assert kept >= 10, "most boxes stay in the picture"


def test_a_window_larger_than_the_images_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        flip_zoom_shift(_marked_batch(), torch.Generator(), (96, 96))


def test_colour_jitter_scales_and_shuffles_whole_channels_and_sometimes_drops_colour() -> None:
    levels = torch.tensor([0.2, 0.4, 0.6])
    images = levels.view(1, 3, 1, 1).expand(64, 3, 4, 4).contiguous()
    batch = Batch(images, [np.zeros((0, 4), np.float32)] * 64, [np.zeros(0, np.int64)] * 64)
    out = colour_jitter(batch, torch.Generator().manual_seed(0)).images
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out)), "every channel is scaled as a whole"
    values = out[:, :, 0, 0]
    grey = (values.amax(1) - values.amin(1)) < 1e-6
    assert 0 < int(grey.sum()) < 64, "some images, not all, lose their colour"
    low, high = BRIGHTNESS[0] * (1 - COLOUR), BRIGHTNESS[1] * (1 + COLOUR)
    for row in values[~grey]:
        # Each output channel is one of the input channels times a gain within the ranges.
        ratios = row.view(3, 1) / levels.view(1, 3)
        assert all(bool(((r >= low - 1e-6) & (r <= high + 1e-6)).any()) for r in ratios)
    orders = {tuple(torch.argsort(row).tolist()) for row in values[~grey]}
    assert len(orders) > 1, "the channel order changes between images"


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
