"""Track interpolation between keyframes."""

from __future__ import annotations

import pytest

from cvcycle.annotate.tracks import Keyframe, interpolate, track_boxes

KEYS = [Keyframe(10, (0.0, 0.0, 10.0, 20.0)), Keyframe(20, (100.0, 50.0, 30.0, 20.0))]


@pytest.mark.parametrize(
    ("frame", "box"),
    [
        (9, None),  # before the first keyframe: no box
        (10, (0.0, 0.0, 10.0, 20.0)),
        (15, (50.0, 25.0, 20.0, 20.0)),
        (12, (20.0, 10.0, 14.0, 20.0)),
        (20, (100.0, 50.0, 30.0, 20.0)),
        (21, None),
    ],
)
def test_interpolate(frame: int, box: tuple[float, ...] | None) -> None:
    got = interpolate(KEYS, frame)
    if box is None:
        assert got is None
    else:
        assert got == pytest.approx(box)


def test_keyframe_order_does_not_matter_and_three_keyframes_bend_the_path() -> None:
    keys = [
        Keyframe(4, (40.0, 0.0, 10.0, 10.0)),
        Keyframe(0, (0.0, 0.0, 10.0, 10.0)),
        Keyframe(6, (40.0, 20.0, 10.0, 10.0)),
    ]
    boxes = track_boxes(keys, range(0, 10))
    assert sorted(boxes) == [0, 1, 2, 3, 4, 5, 6]
    assert boxes[2] == pytest.approx((20.0, 0.0, 10.0, 10.0))
    assert boxes[5] == pytest.approx((40.0, 10.0, 10.0, 10.0))


def test_only_requested_frames_are_returned() -> None:
    assert sorted(track_boxes(KEYS, [0, 10, 14, 30])) == [10, 14]
    assert track_boxes([], range(5)) == {}


def test_two_keyframes_on_one_frame_are_refused() -> None:
    with pytest.raises(ValueError, match="frame 3"):
        interpolate([Keyframe(3, (0, 0, 1, 1)), Keyframe(3, (1, 1, 1, 1))], 3)
