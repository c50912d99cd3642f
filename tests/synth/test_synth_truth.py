"""Ground truth of the synthetic world: boxes are the exact mask extents, segments are consistent."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from cvcycle.errors import InvalidInput
from cvcycle.synth import (
    ACTIONS,
    CLASSES,
    DOG_LABEL_BASE,
    LIGHTING,
    MIN_BOX_PIXELS,
    ROOMS,
    Box,
    ClipSpec,
    generate_clips,
    render_label_frames,
)


def _by_frame(spec: ClipSpec) -> dict[int, dict[int, Box]]:
    out: dict[int, dict[int, Box]] = defaultdict(dict)
    for box in spec.boxes:
        assert box.track_id not in out[box.frame_index], "two boxes for one track in one frame"
        out[box.frame_index][box.track_id] = box
    return out


def _all(*groups: list[ClipSpec]) -> list[ClipSpec]:
    return [spec for group in groups for spec in group]


def test_every_clip_has_boxes_inside_the_frame(
    day_clips: list[ClipSpec], night_dog_clips: list[ClipSpec], dim_dog_clips: list[ClipSpec]
) -> None:
    for spec in _all(day_clips, night_dog_clips, dim_dog_clips):
        assert spec.boxes, spec.name
        people = int(spec.attributes["people"])
        for box in spec.boxes:
            assert box.cls in CLASSES
            assert 1 <= box.track_id <= people
            assert 0 <= box.frame_index < spec.num_frames
            assert box.w >= 1 and box.h >= 1
            assert box.x >= 0 and box.x + box.w <= spec.width
            assert box.y >= 0 and box.y + box.h <= spec.height


def test_boxes_are_the_extent_of_the_rendered_masks(
    day_clips: list[ClipSpec], night_dog_clips: list[ClipSpec]
) -> None:
    for spec in [day_clips[0], *night_dog_clips[:2]]:
        boxes = _by_frame(spec)
        people = int(spec.attributes["people"])
        for t, labels in enumerate(render_label_frames(spec)):
            assert labels.shape == (spec.height, spec.width)
            for track in range(1, people + 1):
                mask = labels == track
                if mask.sum() < MIN_BOX_PIXELS:
                    assert track not in boxes[t], "box for a (nearly) invisible person"
                    continue
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                box = boxes[t][track]
                assert (box.x, box.y) == (cols[0], rows[0])
                assert (box.x + box.w - 1, box.y + box.h - 1) == (cols[-1], rows[-1])
            # No box comes from anything but a person's mask.
            assert set(boxes[t]) <= set(np.unique(labels).tolist())


def test_track_ids_are_stable_within_a_clip(day_clips: list[ClipSpec]) -> None:
    for spec in day_clips:
        per_track: dict[int, list[Box]] = defaultdict(list)
        for box in spec.boxes:
            per_track[box.track_id].append(box)
        # Each person is visible most of the clip, under one id, moving smoothly between frames.
        assert len(per_track) == int(spec.attributes["people"])
        for boxes in per_track.values():
            assert len(boxes) >= spec.num_frames // 2
            centres = np.array([(b.frame_index, b.x + b.w / 2) for b in boxes])
            jumps = np.abs(np.diff(centres[:, 1]))[np.diff(centres[:, 0]) == 1]
            assert np.median(jumps) < 0.05 * spec.width


def test_segments_lie_in_the_clip_and_end_in_fallen_boxes(
    day_clips: list[ClipSpec], night_dog_clips: list[ClipSpec], dim_dog_clips: list[ClipSpec]
) -> None:
    falls = 0
    for spec in _all(day_clips, night_dog_clips, dim_dog_clips):
        boxes = _by_frame(spec)
        for seg in spec.segments:
            falls += 1
            assert seg.cls in ACTIONS
            assert 0 <= seg.start_frame < seg.end_frame < spec.num_frames
            assert seg.end_frame - seg.start_frame >= 3, "a fall takes a few frames"
            before = [boxes[t][seg.track_id] for t in range(seg.start_frame) if seg.track_id in boxes[t]]
            after = [
                boxes[t][seg.track_id]
                for t in range(seg.end_frame, spec.num_frames)
                if seg.track_id in boxes[t]
            ]
            assert before and all(b.cls == "person" for b in before)
            assert after and all(b.cls == "fallen_person" for b in after)
            # Lying bodies are wider than tall; standing ones taller than wide.
            assert np.median([b.w / b.h for b in after]) > 1.5
            assert np.median([b.w / b.h for b in before]) < 1.0
    assert falls >= 3


def test_most_clips_contain_a_fall() -> None:
    specs = generate_clips(20, "day", seed=9, seconds=4.0)
    assert sum(bool(spec.segments) for spec in specs) >= 14
    assert all(spec.attributes["falls"] == str(len(spec.segments)) for spec in specs)


def test_attributes_and_names(day_clips: list[ClipSpec], night_dog_clips: list[ClipSpec]) -> None:
    for spec in _all(day_clips, night_dog_clips):
        assert spec.attributes["lighting"] == spec.lighting in LIGHTING
        assert spec.attributes["dogs"] == ("yes" if spec.dogs else "no")
        assert spec.attributes["scene"] in ROOMS
        assert spec.attributes["synthetic"] == "yes"
    assert [s.name for s in day_clips] == [f"day-s1-c{i}" for i in range(4)]
    assert night_dog_clips[0].name == "night-dogs-s2-c0"


def test_dogs_have_pixels_but_no_boxes(
    night_dog_clips: list[ClipSpec], dim_dog_clips: list[ClipSpec]
) -> None:
    for spec in [*night_dog_clips, *dim_dog_clips]:
        assert int(spec.attributes["dog_count"]) >= 1
        dog_frames = 0
        for labels in render_label_frames(spec):
            dog = labels >= DOG_LABEL_BASE
            dog_frames += bool(dog.sum() > 50)
        assert dog_frames >= spec.num_frames // 2, spec.name
        assert {b.track_id for b in spec.boxes} <= set(range(1, int(spec.attributes["people"]) + 1))
        per_frame: dict[int, int] = defaultdict(int)
        for box in spec.boxes:
            per_frame[box.frame_index] += 1
        assert max(per_frame.values()) <= int(spec.attributes["people"])


def test_no_dogs_without_dogs(day_clips: list[ClipSpec]) -> None:
    spec = day_clips[0]
    assert spec.attributes["dog_count"] == "0"
    assert all((labels < DOG_LABEL_BASE).all() for labels in render_label_frames(spec))


@pytest.mark.parametrize("lighting", LIGHTING)
def test_people_further_away_are_smaller(lighting: str) -> None:
    correlations = []
    for spec in generate_clips(6, lighting, seed=4):
        for track in range(1, int(spec.attributes["people"]) + 1):
            standing = [b for b in spec.boxes if b.track_id == track and b.cls == "person"]
            feet = np.array([b.y + b.h for b in standing])
            if len(standing) > 10 and feet.std() > 5:
                correlations.append(np.corrcoef(feet, [b.h for b in standing])[0, 1])
    # Perspective: feet higher in the image (further away) go with a shorter box.
    assert correlations and np.median(correlations) > 0.8


def test_empty_rooms_have_dogs_and_nothing_to_find() -> None:
    specs = generate_clips(5, "night", dogs=True, seed=4, seconds=1.0, empty_share=0.4)
    empty = [s for s in specs if not s.people]
    assert [s.name for s in empty] == ["night-dogs-empty-s4-c2", "night-dogs-empty-s4-c4"]
    for spec in empty:
        assert spec.boxes == () and spec.segments == () and spec.attributes["people"] == "0"
        masks = list(render_label_frames(spec))
        assert all(((m > 0) & (m < DOG_LABEL_BASE)).sum() == 0 for m in masks)  # no person pixels
        assert any((m >= DOG_LABEL_BASE).sum() > 50 for m in masks)  # the dogs are there
    # Clips that are not empty are the clips the same seed gives without empty rooms.
    plain = generate_clips(5, "night", dogs=True, seed=4, seconds=1.0)
    assert [s for s in specs if s.people] == [plain[0], plain[1], plain[3]]
    with pytest.raises(InvalidInput, match="empty_share"):
        generate_clips(1, "day", empty_share=1.5)
