"""The one box rule: fitting a box into its image, clipping a model's box, class names, IoU."""

from __future__ import annotations

import math

import pytest

from cvcycle.boxes import (
    BORDER_TOLERANCE_PX,
    MAX_CLASS_NAME_LENGTH,
    XYWH,
    Box,
    check_class_name,
    clip_box,
    fit_box,
    iou,
)
from cvcycle.errors import InvalidInput

W, H = 64, 48
NAN, INF = math.nan, math.inf
TOL = BORDER_TOLERANCE_PX


@pytest.mark.parametrize(
    ("xywh", "expected", "error"),
    [
        ((2, 4, 10, 20), (2, 4, 10, 20), None),  # inside: unchanged
        ((0, 0, W, H), (0, 0, W, H), None),  # the whole image, on the border
        ((54, 28, 10, 20), (54, 28, 10, 20), None),  # touching the right and bottom border
        ((-TOL, 0, 10, 10), (0, 0, 10 - TOL, 10), None),  # within the tolerance: clipped
        ((0, -0.5, 10, 10), (0, 0, 10, 9.5), None),
        ((60, 40, 4 + TOL, 8 + TOL), (60, 40, 4, 8), None),
        ((-TOL, -TOL, W + 2 * TOL, H + 2 * TOL), (0, 0, W, H), None),
        ((-TOL - 0.01, 0, 10, 10), None, "lies outside the 64x48 frame"),  # beyond the tolerance
        ((60, 2, 10, 10), None, "lies outside the 64x48 frame"),
        ((0, 40, 10, 8 + TOL + 0.01), None, "lies outside the 64x48 frame"),
        ((100, 100, 5, 5), None, "lies outside the 64x48 frame"),
        ((W + 0.5, 0, 0.4, 10), None, "lies outside the 64x48 frame"),  # in the band, no area inside
        ((0, -TOL, 10, TOL), None, "lies outside the 64x48 frame"),
        ((0, 0, 0, 10), None, "size must be positive, got w=0 h=10"),  # zero size
        ((0, 0, 10, -1), None, "size must be positive"),
        ((NAN, 0, 10, 10), None, "x=nan is not a finite number"),
        ((0, 0, 10, INF), None, "h=inf is not a finite number"),
        ((0, -INF, 10, 10), None, "y=-inf is not a finite number"),
    ],
)
def test_fit_box(xywh: XYWH, expected: XYWH | None, error: str | None) -> None:
    box = Box("person", *xywh)
    if error is not None:
        with pytest.raises(InvalidInput, match=f"^label 3: .*{error}"):
            fit_box(box, W, H, where="label 3")
        return
    fitted = fit_box(box, W, H, where="label 3")
    assert fitted.xywh() == pytest.approx(expected)
    assert fitted.cls == "person"


def test_a_rejected_box_hints_at_the_tolerance() -> None:
    with pytest.raises(InvalidInput) as caught:
        fit_box(Box("person", 60, 2, 10, 10), W, H)
    assert str(caught.value).startswith("box: box x=60 y=2 w=10 h=10 lies outside")
    assert caught.value.hint == "draw the box inside the image (up to 1 px past its border is clipped)"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("person", None),
        ("fallen_person", None),
        ("two words", None),
        ("x" * MAX_CLASS_NAME_LENGTH, None),
        ("", "is empty, longer than 100 characters or padded"),
        ("x" * (MAX_CLASS_NAME_LENGTH + 1), "is empty, longer than 100 characters or padded"),
        (" person", "padded"),
        ("person ", "padded"),
        ("person\n", "padded"),
        (None, "class name must be a string, got None"),
        (7, "class name must be a string, got 7"),
    ],
)
def test_check_class_name(name: object, error: str | None) -> None:
    if error is None:
        assert check_class_name(name, "box 0") == name
        return
    with pytest.raises(InvalidInput, match=f"^box 0: .*{error}"):
        check_class_name(name, "box 0")


def test_fit_box_checks_the_class_name() -> None:
    with pytest.raises(InvalidInput, match="padded"):
        fit_box(Box(" person", 1, 1, 5, 5), W, H)


@pytest.mark.parametrize(
    ("xywh", "expected"),
    [
        ((2, 4, 10, 20), (2, 4, 10, 20)),  # inside: unchanged
        ((-3, 40, 20, 20), (0, 40, 17, 8)),  # reaching past two borders, however far
        ((-100, -100, 300, 300), (0, 0, W, H)),
        ((70, 10, 5, 5), None),  # wholly outside
        ((W, 0, 5, 5), None),  # touching the border from outside: no area inside
        ((NAN, 0, 5, 5), None),
        ((0, 0, INF, 5), None),
    ],
)
def test_clip_box(xywh: XYWH, expected: XYWH | None) -> None:
    clipped = clip_box(Box("person", *xywh), W, H)
    if expected is None:
        assert clipped is None
    else:
        assert clipped is not None and clipped.xywh() == pytest.approx(expected)


def test_box_to_json_is_the_detection_form() -> None:
    assert Box("person", 1, 2, 3, 4).to_json() == {"cls": "person", "box": [1, 2, 3, 4]}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),  # touching edges share no area
        ((0, 0, 10, 10), (20, 20, 5, 5), 0.0),  # disjoint
        ((0, 0, 10, 10), (2, 2, 5, 5), 25 / 100),  # one inside the other
        ((0, 0, 0, 10), (0, 0, 0, 10), 0.0),  # empty boxes
        ((0.5, 0.5, 2, 2), (1.5, 1.5, 2, 2), 1 / 7),
    ],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)
    assert iou(Box("a", *a).xywh(), Box("b", *b).xywh()) == pytest.approx(expected)
