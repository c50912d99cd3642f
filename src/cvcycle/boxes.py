"""The one box: a class and a pixel rectangle, the rule that fits it into an image, and IoU.

What it owns:

* ``Box``: a class name and ``x, y, w, h`` in pixels, ``x, y`` the top-left corner (COCO's bbox
  order). Ground truth, an operator's box and an annotator's box are all this one value.
* the class-name rule, ``check_class_name``: a string, non-empty, at most
  ``MAX_CLASS_NAME_LENGTH`` characters, no leading or trailing whitespace.
* the fit rule and its one ``BORDER_TOLERANCE_PX``. A box that people drew or a tool exported may
  reach that far past the image border (exporters round coordinates, hands slip) and is clipped to
  the image; further out is an error (``fit_box``). A model's box is only clipped (``clip_box``):
  detectors reach past the border by design, and what they saw is kept.
* ``iou``, the one intersection-over-union formula. (The detector's exported graph has a tensor form
  of it, ``models.centernet._pairwise_iou_tensor``, because it runs where Python does not.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvcycle.errors import InvalidInput

# A box this far past the image border is clipped to it; further out is an error.
BORDER_TOLERANCE_PX = 1.0
MAX_CLASS_NAME_LENGTH = 100

XYWH = tuple[float, float, float, float]


@dataclass(frozen=True)
class Box:
    """A box of class ``cls`` in pixels: ``x, y`` its top-left corner, ``w, h`` its size."""

    cls: str
    x: float
    y: float
    w: float
    h: float

    def xywh(self) -> XYWH:
        return (self.x, self.y, self.w, self.h)

    def to_json(self) -> dict[str, Any]:
        """``{"cls", "box": [x, y, w, h]}``, the form a detection takes in ``Detections.to_json()``."""
        return {"cls": self.cls, "box": [self.x, self.y, self.w, self.h]}


def check_class_name(name: object, where: str) -> str:
    """``name`` if it is a valid class name; InvalidInput naming ``where`` otherwise."""
    if not isinstance(name, str):
        raise InvalidInput(f"{where}: class name must be a string, got {name!r}")
    if not name or len(name) > MAX_CLASS_NAME_LENGTH or name.strip() != name:
        raise InvalidInput(
            f"{where}: class name {name!r} is empty, longer than {MAX_CLASS_NAME_LENGTH} characters "
            "or padded with spaces"
        )
    return name


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """A model's ``box`` clipped to the ``width`` x ``height`` image, however far it reaches past the
    border; None if no area of it lies inside (or a coordinate is not finite)."""
    if not all(math.isfinite(v) for v in box.xywh()):
        return None
    x0, y0 = max(box.x, 0.0), max(box.y, 0.0)
    x1, y1 = min(box.x + box.w, float(width)), min(box.y + box.h, float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    if (x0, y0, x1 - x0, y1 - y0) == box.xywh():
        return box
    return Box(box.cls, x0, y0, x1 - x0, y1 - y0)


def within_border(xywh: Sequence[float], width: float, height: float) -> bool:
    """Whether an ``x, y, w, h`` box lies inside a ``width`` x ``height`` image up to the tolerance."""
    x, y, w, h = xywh
    tol = BORDER_TOLERANCE_PX
    return x >= -tol and y >= -tol and x + w <= width + tol and y + h <= height + tol


def fit_box(box: Box, width: int, height: int, where: str = "box") -> Box:
    """``box`` clipped to the ``width`` x ``height`` image, if it is a valid box and lies inside the
    image up to ``BORDER_TOLERANCE_PX``; InvalidInput naming ``where`` otherwise.

    Refused: a bad class name, a non-finite coordinate, a size that is not positive, a box that
    reaches further past the border than the tolerance, and one with no area inside the image.
    """
    check_class_name(box.cls, where)
    for name, value in zip("xywh", box.xywh(), strict=True):
        if not math.isfinite(value):
            raise InvalidInput(f"{where}: {name}={value} is not a finite number")
    if box.w <= 0 or box.h <= 0:
        raise InvalidInput(f"{where}: box size must be positive, got w={box.w:g} h={box.h:g}")
    clipped = clip_box(box, width, height) if within_border(box.xywh(), width, height) else None
    if clipped is None:
        tol = BORDER_TOLERANCE_PX
        raise InvalidInput(
            f"{where}: box x={box.x:g} y={box.y:g} w={box.w:g} h={box.h:g} lies outside the "
            f"{width}x{height} frame",
            hint=f"draw the box inside the image (up to {tol:g} px past its border is clipped)",
        )
    return clipped


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes (0 for disjoint or empty ones)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
