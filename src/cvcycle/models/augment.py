"""Batch augmentation for detectors: images (B,3,H,W) float in [0, 1], boxes xyxy in input pixels.

A small training set (a few clips of a few rooms) teaches a network from scratch to recognise the
rooms and the clothes rather than people. Three cheap transforms break that: a mosaic of four
frames (new contexts for every object), a random flip/zoom/shift, and a colour jitter that shuffles
the RGB channels and sometimes drops colour. A random crop (``random_crop``) then trains a fully
convolutional network on part of each image at the same scale, which makes a step cheaper without
changing the size objects have at inference. Every random choice comes from the given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own convention

MOSAIC_P = 0.5
ZOOM = (0.8, 1.25)
SHIFT = 0.15  # of half the image, in normalised coordinates
BRIGHTNESS = (0.7, 1.3)
COLOUR = 0.1
GREY_P = 0.2
# A box cut by the frame edge or a mosaic seam is kept while at least this much of it is visible.
MIN_VISIBLE = 0.5


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) float in [0, 1]
    boxes: list[np.ndarray]  # per image (N, 4) float32 xyxy in input pixels
    classes: list[np.ndarray]  # per image (N,) int64


def _clip(
    boxes: np.ndarray, classes: np.ndarray, x0: float, y0: float, x1: float, y1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to a window, dropping those with less than MIN_VISIBLE of their area inside."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(x0, x1)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(y0, y1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= MIN_VISIBLE * area) & (area > 0)
    return clipped[keep], classes[keep]


def mosaic(batch: Batch, generator: torch.Generator) -> Batch:
    """Replace some images by a window onto a 2x2 canvas of it and three batch neighbours (YOLO's mosaic)."""
    images = batch.images.clone()
    boxes, classes = list(batch.boxes), list(batch.classes)
    size, _, height, width = images.shape
    if size < 2:
        return batch
    chosen = (torch.rand(size, generator=generator) < MOSAIC_P).tolist()
    centres = torch.rand(size, 2, generator=generator)
    for i in range(size):
        if not chosen[i]:
            continue
        # The window's top-left corner on the (2H, 2W) canvas; tile q sits at (q % 2 * W, q // 2 * H).
        x0 = int(centres[i, 0] * width)
        y0 = int(centres[i, 1] * height)
        parts_boxes, parts_classes = [], []
        for q in range(4):
            source = (i + q) % size
            ox, oy = (q % 2) * width, (q // 2) * height
            left, top = max(x0, ox), max(y0, oy)
            right, bottom = min(x0 + width, ox + width), min(y0 + height, oy + height)
            if right <= left or bottom <= top:
                continue
            images[i, :, top - y0 : bottom - y0, left - x0 : right - x0] = batch.images[
                source, :, top - oy : bottom - oy, left - ox : right - ox
            ]
            moved = batch.boxes[source] + np.array([ox - x0, oy - y0] * 2, np.float32)
            kept_boxes, kept_classes = _clip(
                moved, batch.classes[source], left - x0, top - y0, right - x0, bottom - y0
            )
            parts_boxes.append(kept_boxes)
            parts_classes.append(kept_classes)
        boxes[i] = np.concatenate(parts_boxes).reshape(-1, 4).astype(np.float32)
        classes[i] = np.concatenate(parts_classes).astype(np.int64)
    return Batch(images, boxes, classes)


def flip_zoom_shift(batch: Batch, generator: torch.Generator) -> Batch:
    """A random horizontal flip, zoom and shift per image (one affine resampling)."""
    size, _, height, width = batch.images.shape
    flip = torch.rand(size, generator=generator) < 0.5
    scale = ZOOM[0] + (ZOOM[1] - ZOOM[0]) * torch.rand(size, generator=generator)
    shift = (torch.rand(size, 2, generator=generator) * 2 - 1) * SHIFT
    # affine_grid maps output to input coordinates in [-1, 1]: u_in = ±u_out / scale + shift.
    theta = torch.zeros(size, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -1.0, 1.0) / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(batch.images.shape), align_corners=False)
    images = F.grid_sample(batch.images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    boxes, classes = [], []
    for b, image_boxes in enumerate(batch.boxes):
        s, (tx, ty), mirrored = float(scale[b]), shift[b].tolist(), bool(flip[b])
        x = image_boxes[:, [0, 2]] / width * 2 - 1
        y = image_boxes[:, [1, 3]] / height * 2 - 1
        x = ((tx - x if mirrored else x - tx) * s + 1) / 2 * width
        y = ((y - ty) * s + 1) / 2 * height
        x.sort(axis=1)
        moved = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1).astype(np.float32)
        kept_boxes, kept_classes = _clip(moved, batch.classes[b], 0, 0, width, height)
        boxes.append(kept_boxes)
        classes.append(kept_classes)
    return Batch(images, boxes, classes)


def colour_jitter(batch: Batch, generator: torch.Generator) -> Batch:
    """Brightness and per-channel gain, a random channel order, and sometimes grey."""
    images = batch.images
    size = images.shape[0]
    low, high = BRIGHTNESS
    gain = low + (high - low) * torch.rand(size, 1, 1, 1, generator=generator)
    colour = 1 + (torch.rand(size, 3, 1, 1, generator=generator) * 2 - 1) * COLOUR
    images = images * gain * colour
    order = torch.argsort(torch.rand(size, 3, generator=generator), dim=1)
    images = torch.gather(images, 1, order.view(size, 3, 1, 1).expand_as(images))
    grey = (torch.rand(size, 1, 1, 1, generator=generator) < GREY_P).to(images.dtype)
    images = grey * images.mean(dim=1, keepdim=True) + (1 - grey) * images
    return Batch(images.clamp(0.0, 1.0), batch.boxes, batch.classes)


def random_crop(batch: Batch, size: tuple[int, int], generator: torch.Generator) -> Batch:
    """A window of ``size`` (height, width) at a random place in each image; boxes follow, cut ones
    are clipped (and dropped below ``MIN_VISIBLE``)."""
    count, _, height, width = batch.images.shape
    crop_h, crop_w = size
    if (crop_h, crop_w) == (height, width):
        return batch
    if crop_h > height or crop_w > width:
        raise ValueError(f"a crop of {crop_h}x{crop_w} does not fit images of {height}x{width}")
    tops = torch.randint(0, height - crop_h + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - crop_w + 1, (count,), generator=generator).tolist()
    images = torch.stack(
        [
            batch.images[i, :, y : y + crop_h, x : x + crop_w]
            for i, (y, x) in enumerate(zip(tops, lefts, strict=True))
        ]
    )
    boxes, classes = [], []
    for i, (y, x) in enumerate(zip(tops, lefts, strict=True)):
        moved = batch.boxes[i] - np.array([x, y, x, y], np.float32)
        kept_boxes, kept_classes = _clip(moved, batch.classes[i], 0, 0, crop_w, crop_h)
        boxes.append(kept_boxes)
        classes.append(kept_classes)
    return Batch(images, boxes, classes)


def augment(batch: Batch, generator: torch.Generator) -> Batch:
    """Mosaic, then flip/zoom/shift, then colour: the detector's training augmentation."""
    return colour_jitter(flip_zoom_shift(mosaic(batch, generator), generator), generator)
