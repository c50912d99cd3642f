"""The COCO detection reader and writer: round trips, extras, defaults, every rejection, atomic writes."""

from __future__ import annotations

import copy
import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cvcycle.data.formats.coco import (
    CocoAnnotation,
    CocoCategory,
    CocoDocument,
    CocoImage,
    parse_coco,
    read_coco,
    write_coco,
)
from cvcycle.errors import InvalidInput

SOURCE = "annotations.json"

_BASE: dict[str, Any] = {
    "info": {"description": "fixture"},
    "licenses": [{"id": 1, "name": "CC-BY"}],
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
        {"id": 2, "file_name": "b.jpg", "width": 320, "height": 240},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
        {"id": 11, "image_id": 2, "category_id": 2, "bbox": [0, 0, 320, 240], "area": 5.0, "iscrowd": 1},
    ],
    "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person", "supercategory": "human"}],
}


def _base() -> dict[str, Any]:
    return copy.deepcopy(_BASE)


def _with(dotted: str, value: Any) -> dict[str, Any]:
    """The base document with the value at ``a.0.b`` replaced (or added)."""
    doc = _base()
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return doc


def _without(dotted: str) -> dict[str, Any]:
    doc = _base()
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return doc


def _sample_document() -> CocoDocument:
    return CocoDocument(
        images=(
            CocoImage(1, "frames/000001.jpg", 1920, 1080, {"license": 1, "coco_url": "http://x/1.jpg"}),
            CocoImage(7, "frames/000007.jpg", 1920, 1080, {}),
        ),
        annotations=(
            CocoAnnotation(1, 1, 3, (10.5, 20.25, 100.0, 50.0), 5000.0, 0, {"track_id": 4, "score": 0.9}),
            CocoAnnotation(
                2, 7, 5, (0.0, 0.0, 1920.0, 1080.0), 1.0, 1, {"attributes": {"occluded": True, "color": "ré"}}
            ),
        ),
        categories=(CocoCategory(3, "car", "vehicle"), CocoCategory(5, "person")),
        info={"year": 2024, "contributor": "cvcycle"},
    )


# --- round trip and accepted input ---------------------------------------------------------------


def test_round_trip_write_then_read_is_equal(tmp_path: Path) -> None:
    doc = _sample_document()
    target = tmp_path / "out.json"
    write_coco(doc, target)
    assert read_coco(target) == doc


def test_written_file_is_compact_standard_coco(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_coco(_sample_document(), target)
    text = target.read_text(encoding="utf-8")
    assert "\n" not in text and ", " not in text  # compact, no indent
    data = json.loads(text)
    assert list(data) == ["info", "licenses", "images", "annotations", "categories"]
    assert data["licenses"] == []
    ann = data["annotations"][0]
    assert ann["bbox"] == [10.5, 20.25, 100.0, 50.0]
    assert (ann["area"], ann["iscrowd"], ann["segmentation"]) == (5000.0, 0, [])
    assert ann["track_id"] == 4
    assert data["images"][0]["coco_url"] == "http://x/1.jpg"
    assert data["categories"][1] == {"id": 5, "name": "person", "supercategory": ""}


def test_extra_keys_are_preserved() -> None:
    doc = _with("images.0.coco_url", "http://x/a.jpg")
    doc["images"][0]["date_captured"] = "2024-01-01"
    doc["annotations"][0]["attributes"] = {"occluded": False, "rotation": 0.0}
    doc["annotations"][0]["track_id"] = 3
    doc["annotations"][1]["score"] = 0.75
    parsed = parse_coco(json.dumps(doc), SOURCE)
    assert parsed.images[0].extra == {"coco_url": "http://x/a.jpg", "date_captured": "2024-01-01"}
    assert parsed.images[1].extra == {}
    assert parsed.annotations[0].extra == {"attributes": {"occluded": False, "rotation": 0.0}, "track_id": 3}
    assert parsed.annotations[1].extra == {"score": 0.75}
    assert parsed.info == {"description": "fixture"}


def test_extra_keys_survive_a_write(tmp_path: Path) -> None:
    doc = _with("annotations.0.attributes", {"occluded": True})
    first = parse_coco(json.dumps(doc), SOURCE)
    write_coco(first, tmp_path / "again.json")
    assert read_coco(tmp_path / "again.json") == first


def test_defaults_iscrowd_zero_and_area_width_times_height() -> None:
    parsed = parse_coco(json.dumps(_base()), SOURCE)
    ann = parsed.annotations[0]
    assert ann.bbox == (10.0, 20.0, 30.0, 40.0)
    assert ann.iscrowd == 0
    assert ann.area == 30.0 * 40.0
    # Explicit values win over the defaults.
    assert (parsed.annotations[1].area, parsed.annotations[1].iscrowd) == (5.0, 1)
    assert parsed.categories == (CocoCategory(1, "car", ""), CocoCategory(2, "person", "human"))


@pytest.mark.parametrize(
    "segmentation",
    [[[1, 2, 3, 4, 5, 6]], {"size": [480, 640], "counts": "abc"}, [], None],
    ids=["polygon", "rle", "empty", "null"],
)
def test_segmentation_is_accepted_and_dropped(segmentation: Any) -> None:
    parsed = parse_coco(json.dumps(_with("annotations.0.segmentation", segmentation)), SOURCE)
    assert "segmentation" not in parsed.annotations[0].extra


def test_categories_may_be_missing_when_there_are_no_annotations() -> None:
    doc = _without("categories")
    doc["annotations"] = []
    parsed = parse_coco(json.dumps(doc), SOURCE)
    assert parsed.categories == () and parsed.annotations == ()


def test_box_within_one_pixel_of_the_border_is_accepted() -> None:
    # Image 1 is 640x480: the box pokes out by exactly 1 px on every side.
    parsed = parse_coco(json.dumps(_with("annotations.0.bbox", [-1, -1, 642, 482])), SOURCE)
    assert parsed.annotations[0].bbox == (-1.0, -1.0, 642.0, 482.0)


def test_accepts_str_bytes_and_utf8_bom() -> None:
    text = json.dumps(_base())
    expected = parse_coco(text, SOURCE)
    assert parse_coco(text.encode("utf-8"), SOURCE) == expected
    assert parse_coco(b"\xef\xbb\xbf" + text.encode("utf-8"), SOURCE) == expected


def test_null_supercategory_and_info_read_as_empty() -> None:
    doc = _with("categories.0.supercategory", None)
    doc["info"] = None
    parsed = parse_coco(json.dumps(doc), SOURCE)
    assert parsed.categories[0].supercategory == ""
    assert parsed.info == {}


# --- rejections ----------------------------------------------------------------------------------

_MALFORMED: list[tuple[str, Any, str]] = [
    # (id, input: dict -> dumped as JSON / str or bytes -> given as is, expected message fragment)
    ("invalid-json", '{"images": [}', "annotations.json: line 1 column 13: invalid JSON (Expecting value)"),
    ("invalid-json-multiline", '{\n  "images": []\n  "annotations": []\n}', "line 3 column 3: invalid JSON"),
    ("empty-file", "  \n", "empty file"),
    ("not-utf8", b'{"images": "\xff"}', "not UTF-8 text"),
    ("top-level-array", "[]", "top level: expected a JSON object, got array"),
    ("top-level-number", "3", "top level: expected a JSON object, got number 3"),
    ("missing-images", _without("images"), "annotations.json: images: missing"),
    ("missing-annotations", _without("annotations"), "annotations: missing"),
    (
        "missing-categories",
        _without("categories"),
        "categories: missing (required when there are annotations)",
    ),
    ("images-not-array", _with("images", {"id": 1}), "images: expected an array, got object"),
    ("image-not-object", _with("images.1", 5), "images[1]: expected an object, got number 5"),
    ("info-not-object", _with("info", [1]), "info: expected an object, got array"),
    ("image-id-string", _with("images.0.id", "1"), 'images[0].id: expected an integer, got string "1"'),
    ("image-id-float", _with("images.0.id", 1.0), "images[0].id: expected an integer, got number 1.0"),
    ("image-id-bool", _with("images.0.id", True), "images[0].id: expected an integer, got true"),
    ("file-name-empty", _with("images.0.file_name", ""), "images[0].file_name: must not be empty"),
    ("file-name-missing", _without("images.1.file_name"), "images[1].file_name: missing"),
    (
        "file-name-number",
        _with("images.0.file_name", 3),
        "images[0].file_name: expected a string, got number 3",
    ),
    ("width-zero", _with("images.0.width", 0), "images[0].width: expected a positive value, got number 0"),
    ("height-negative", _with("images.1.height", -5), "images[1].height: expected a positive value"),
    ("bbox-3", _with("annotations.0.bbox", [1, 2, 3]), "annotations[0].bbox: expected 4 numbers, got 3"),
    (
        "bbox-5",
        _with("annotations.1.bbox", [1, 2, 3, 4, 5]),
        "annotations[1].bbox: expected 4 numbers, got 5",
    ),
    ("bbox-not-array", _with("annotations.0.bbox", "1,2,3,4"), "annotations[0].bbox: expected an array"),
    (
        "bbox-string-item",
        _with("annotations.0.bbox", [1, 2, "3", 4]),
        "annotations[0].bbox[2]: expected a number",
    ),
    (
        "bbox-nan",
        _with("annotations.0.bbox", [1, float("nan"), 3, 4]),
        "bbox[1]: expected a finite number, got nan",
    ),
    (
        "bbox-inf",
        _with("annotations.0.bbox", [1, 2, float("inf"), 4]),
        "bbox[2]: expected a finite number, got inf",
    ),
    ("area-nan", _with("annotations.0.area", float("nan")), "annotations[0].area: expected a finite number"),
    ("area-negative", _with("annotations.0.area", -1), "annotations[0].area: expected at least 0"),
    ("iscrowd-2", _with("annotations.0.iscrowd", 2), "annotations[0].iscrowd: expected 0 or 1, got number 2"),
    (
        "iscrowd-bool",
        _with("annotations.0.iscrowd", True),
        "annotations[0].iscrowd: expected 0 or 1, got true",
    ),
    ("image-id-missing", _without("annotations.1.image_id"), "annotations[1].image_id: missing"),
    ("category-name-empty", _with("categories.0.name", ""), "categories[0].name: must not be empty"),
    ("width-negative", _with("annotations.0.bbox", [10, 10, -2, 5]), "annotations[0].bbox: negative width"),
    (
        "height-negative-box",
        _with("annotations.0.bbox", [10, 10, 2, -5]),
        "annotations[0].bbox: negative height",
    ),
    ("duplicate-image-id", _with("images.1.id", 1), "images[1].id: duplicate id 1 (first at images[0])"),
    ("duplicate-annotation-id", _with("annotations.1.id", 10), "annotations[1].id: duplicate id 10"),
    ("duplicate-category-id", _with("categories.1.id", 1), "categories[1].id: duplicate id 1"),
    (
        "duplicate-category-name",
        _with("categories.1.name", "car"),
        'categories[1].name: duplicate name "car"',
    ),
    ("unknown-image", _with("annotations.0.image_id", 99), "annotations[0].image_id: no image with id 99"),
    (
        "unknown-category",
        _with("annotations.1.category_id", 7),
        "annotations[1].category_id: no category with id 7",
    ),
    (
        "box-past-right-edge",
        _with("annotations.0.bbox", [600, 0, 50, 10]),
        "annotations[0].bbox: [600, 0, 50, 10] lies outside image 1 (640x480) by more than 1 pixel",
    ),
    (
        "box-left-of-image",
        _with("annotations.0.bbox", [-1.5, 0, 5, 5]),
        "annotations[0].bbox: [-1.5, 0, 5, 5] lies",
    ),
    ("box-below-image", _with("annotations.1.bbox", [0, 200, 10, 41.5]), "lies outside image 2 (320x240)"),
]


@pytest.mark.parametrize(
    ("data", "expected"), [row[1:] for row in _MALFORMED], ids=[row[0] for row in _MALFORMED]
)
def test_malformed_input_is_rejected_with_one_line_naming_file_and_path(data: Any, expected: str) -> None:
    if isinstance(data, dict):
        data = json.dumps(data)
    with pytest.raises(InvalidInput) as caught:
        parse_coco(data, SOURCE)
    message = caught.value.message
    assert expected in message
    assert message.startswith(f"{SOURCE}: ")
    assert "\n" not in message


def test_first_problem_is_reported_and_hint_counts_the_rest() -> None:
    doc = _with("annotations.0.image_id", 99)
    doc["annotations"][1]["category_id"] = 42
    doc["categories"][1]["name"] = "car"
    with pytest.raises(InvalidInput) as caught:
        parse_coco(json.dumps(doc), SOURCE)
    # Categories are checked before annotations, whose references depend on them.
    assert (
        caught.value.message
        == 'annotations.json: categories[1].name: duplicate name "car" (first at categories[0])'
    )
    assert caught.value.hint == "2 more problems after this one"


def test_shape_errors_are_counted_in_the_hint() -> None:
    doc = _with("annotations.0.bbox", [1, 2, 3])
    doc["annotations"][1]["bbox"] = [1, 2]
    with pytest.raises(InvalidInput) as caught:
        parse_coco(json.dumps(doc), SOURCE)
    assert caught.value.message == "annotations.json: annotations[0].bbox: expected 4 numbers, got 3"
    assert caught.value.hint == "1 more problem after this one"


def test_single_problem_has_no_count_hint() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_coco(json.dumps(_with("images.0.width", 0)), SOURCE)
    assert caught.value.hint is None


def test_read_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [1]}', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"bad\.json: annotations\[0\]: expected an object"):
        read_coco(bad)


def test_read_of_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        read_coco(tmp_path / "nope.json")


def test_garbage_collector_is_restored_after_success_and_failure() -> None:
    assert gc.isenabled()
    parse_coco(json.dumps(_base()), SOURCE)
    assert gc.isenabled()
    with pytest.raises(InvalidInput):
        parse_coco("[]", SOURCE)
    assert gc.isenabled()
    gc.disable()
    try:
        parse_coco(json.dumps(_base()), SOURCE)
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


# --- atomic, checked writes ----------------------------------------------------------------------


def _unserialisable_document() -> CocoDocument:
    doc = _sample_document()
    bad = CocoAnnotation(3, 1, 3, (1.0, 1.0, 2.0, 2.0), 4.0, 0, {"embedding": object()})
    return CocoDocument(doc.images, (*doc.annotations, bad), doc.categories, doc.info)


def test_write_is_atomic_when_serialisation_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("previous content", encoding="utf-8")
    with pytest.raises(InvalidInput, match="cannot serialise as JSON"):
        write_coco(_unserialisable_document(), target)
    assert target.read_text(encoding="utf-8") == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_failed_write_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(InvalidInput):
        write_coco(_unserialisable_document(), target)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    target.write_text("previous content", encoding="utf-8")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_coco(_sample_document(), target)
    assert target.read_text(encoding="utf-8") == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_refuses_what_read_would_reject(tmp_path: Path) -> None:
    doc = _sample_document()
    dangling = CocoAnnotation(9, 1, 404, (1.0, 1.0, 2.0, 2.0), 4.0)
    target = tmp_path / "out.json"
    with pytest.raises(
        InvalidInput, match=r"out\.json: annotations\[2\]\.category_id: no category with id 404"
    ):
        write_coco(CocoDocument(doc.images, (*doc.annotations, dangling), doc.categories, doc.info), target)
    assert not target.exists()


def test_write_refuses_non_finite_numbers(tmp_path: Path) -> None:
    doc = _sample_document()
    nan_box = CocoAnnotation(9, 1, 3, (1.0, float("nan"), 2.0, 2.0), 4.0)
    with pytest.raises(InvalidInput, match=r"annotations\[0\]\.bbox\[1\]: expected a finite number"):
        write_coco(CocoDocument(doc.images, (nan_box,), doc.categories), tmp_path / "out.json")


def test_extras_cannot_override_standard_keys(tmp_path: Path) -> None:
    doc = CocoDocument(
        images=(CocoImage(1, "a.jpg", 10, 10, {"id": 2, "width": 0, "license": 3}),),
        annotations=(
            CocoAnnotation(1, 1, 1, (0.0, 0.0, 5.0, 5.0), 25.0, 0, {"bbox": [9], "segmentation": [1]}),
        ),
        categories=(CocoCategory(1, "car"),),
    )
    target = tmp_path / "out.json"
    write_coco(doc, target)
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["images"][0] == {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10, "license": 3}
    assert data["annotations"][0]["bbox"] == [0.0, 0.0, 5.0, 5.0]
    assert data["annotations"][0]["segmentation"] == []


def test_large_document_round_trips(tmp_path: Path) -> None:
    # Exercises the bulk path (one pydantic call over every list); timing is left to bench/.
    images = tuple(CocoImage(i, f"{i:06d}.jpg", 1920, 1080) for i in range(100))
    annotations = tuple(
        CocoAnnotation(
            i, i % 100, 1 + i % 3, (float(i % 1000), 5.0, 20.0, 30.0), 600.0, 0, {"track_id": i // 10}
        )
        for i in range(5000)
    )
    categories = (CocoCategory(1, "car"), CocoCategory(2, "bus"), CocoCategory(3, "person"))
    doc = CocoDocument(images, annotations, categories)
    write_coco(doc, tmp_path / "big.json")
    assert read_coco(tmp_path / "big.json") == doc
