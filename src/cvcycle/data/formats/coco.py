"""COCO detection JSON: a strict reader and an atomic writer.

This is the exchange format CVAT, Detectron2, mmdetection and pycocotools users rely on, so the reader
rejects anything those tools would choke on later (a dangling ``image_id``, a box outside its image, a
``NaN``) here, at import time, with one line naming the file, the JSON path and the reason.

Only detection is modelled: ``segmentation`` is accepted and dropped (polygons and RLE are not our
detection format), and the writer emits ``"segmentation": []``. Non-standard keys of images and
annotations (``attributes``, ``track_id``, ``score``, ``coco_url`` ...) are kept in ``extra`` and
written back unchanged.

The raw shape is checked by pydantic over the whole document in one call, because that runs in Rust
and keeps 100,000 annotations (26 MB) under a second; the cross-references (ids, bounds)
are then checked in one plain Python pass.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cvcycle.boxes import BORDER_TOLERANCE_PX, within_border
from cvcycle.errors import InvalidInput

__all__ = [
    "CocoAnnotation",
    "CocoCategory",
    "CocoDocument",
    "CocoImage",
    "parse_coco",
    "read_coco",
    "write_coco",
]

# Keys the writer owns. Extras with these names would silently override real fields, so the writer
# skips them and the reader never puts them in ``extra``.
_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_ANNOTATION_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"})


# --- public data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoCategory:
    """One entry of ``categories``."""

    id: int
    name: str
    supercategory: str = ""


@dataclass(frozen=True)
class CocoImage:
    """One entry of ``images``; ``extra`` holds its non-standard keys (``license``, ``coco_url`` ...)."""

    id: int
    file_name: str
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CocoAnnotation:
    """One entry of ``annotations``; ``bbox`` is ``(x, y, width, height)`` in pixels, top-left origin.

    ``extra`` holds non-standard keys such as ``attributes`` (CVAT), ``track_id`` or ``score``.
    """

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CocoDocument:
    """A whole COCO detection file. ``licenses`` is not kept: nothing in cvcycle reads it."""

    images: tuple[CocoImage, ...]
    annotations: tuple[CocoAnnotation, ...]
    categories: tuple[CocoCategory, ...]
    info: dict[str, Any] = field(default_factory=dict)


# --- raw JSON shape ------------------------------------------------------------------------------
# Strict mode: JSON has real integers, so "5" or 5.0 as an id is a bug in the exporter that would
# resurface as a failed join later; better to name it now. Strict floats still accept integers.

_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Bbox = Annotated[list[_Finite], Field(min_length=4, max_length=4)]


class _RawImage(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    id: int
    file_name: str = Field(min_length=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class _RawAnnotation(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    id: int
    image_id: int
    category_id: int
    bbox: _Bbox
    area: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = None
    iscrowd: int = Field(default=0, ge=0, le=1)
    # Declared only so that it is not kept as an extra; its content is not our concern.
    segmentation: Any = None


class _RawCategory(BaseModel):
    # Category extras (keypoints, skeleton) belong to other COCO tasks; dropped on purpose.
    model_config = ConfigDict(strict=True, extra="ignore")

    id: int
    name: str = Field(min_length=1)
    # Some exporters write null here; it carries no meaning, so it reads as "".
    supercategory: str | None = None


class _RawDocument(BaseModel):
    # Top-level extras ("licenses", "type": "instances" of old files) are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")

    # Field order is the order errors are reported in; it follows the usual layout of a COCO file.
    info: dict[str, Any] | None = None
    images: list[_RawImage]
    annotations: list[_RawAnnotation]
    # Presence is checked on the raw dict (it is required once there are annotations).
    categories: list[_RawCategory] = Field(default_factory=list)


# Built once at import: building the validator costs milliseconds, each call should not.
_DOCUMENT = TypeAdapter(_RawDocument)


# --- reading -------------------------------------------------------------------------------------


def read_coco(path: Path) -> CocoDocument:
    """Read and validate the COCO detection file at ``path``; raise InvalidInput naming the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_coco(data, source=str(path))


def parse_coco(data: bytes | str, source: str = "<input>") -> CocoDocument:
    """Validate COCO detection JSON given as text or bytes; ``source`` names it in error messages."""
    with _gc_paused():
        obj = _load_json(data, source)
        raw = _validate(obj, source)
        return _to_document(raw)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while building many small objects.

    Allocating hundreds of thousands of dicts and lists triggers full collections over an ever larger
    heap; on 100,000 annotations that was two thirds of the parse time (1.5 s -> 0.5 s without it).
    Nothing built here forms a cycle, so reference counting frees it all the same. The collector is
    re-enabled only if it was on, so a caller that disabled it on purpose keeps it off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_json(data: bytes | str, source: str) -> Any:
    try:
        # json.loads(bytes) also detects UTF-16/32 and a UTF-8 byte-order mark.
        return json.loads(data)
    except json.JSONDecodeError as exc:
        if not exc.doc.strip():
            # "line 1 column 1: Expecting value" would send the user looking for a typo that is not there.
            raise InvalidInput(f"{source}: empty file, expected a COCO JSON object") from exc
        raise InvalidInput(
            f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{source}: byte {exc.start}: not UTF-8 text", hint="COCO files are UTF-8 JSON"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{source}: invalid JSON (nested too deeply)") from exc


def _validate(obj: Any, source: str) -> _RawDocument:
    """Check shape, then references; raise the first problem, with the count of the rest in the hint."""
    if not isinstance(obj, dict):
        hint = (
            "a bare array looks like a COCO results file; a dataset needs images, annotations and categories"
            if isinstance(obj, list)
            else None
        )
        raise InvalidInput(f"{source}: top level: expected a JSON object, got {_describe(obj)}", hint=hint)

    problems: list[str] = []
    raw: _RawDocument | None = None
    try:
        raw = _DOCUMENT.validate_python(obj)
    except ValidationError as exc:
        problems.extend(_pydantic_problem(err) for err in exc.errors(include_url=False))
    if "categories" not in obj and obj.get("annotations"):
        problems.append("categories: missing (required when there are annotations)")

    # References are only checked on a well-formed document: on a broken one they would mostly echo
    # the shape errors (a missing image id makes every annotation of it "dangling").
    if raw is not None and not problems:
        problems.extend(_reference_problems(raw))

    if problems:
        more = len(problems) - 1
        hint = f"{more} more problem{'s' if more > 1 else ''} after this one" if more else None
        raise InvalidInput(f"{source}: {problems[0]}", hint=hint)
    assert raw is not None  # no problems means validation succeeded
    return raw


def _reference_problems(raw: _RawDocument) -> Iterable[str]:
    """Duplicate ids and names, dangling references, boxes that do not fit their image."""
    images: dict[int, _RawImage] = {}
    first_image: dict[int, int] = {}
    for i, img in enumerate(raw.images):
        if img.id in first_image:
            yield f"images[{i}].id: duplicate id {img.id} (first at images[{first_image[img.id]}])"
        else:
            first_image[img.id] = i
            images[img.id] = img

    first_category: dict[int, int] = {}
    first_name: dict[str, int] = {}
    for i, cat in enumerate(raw.categories):
        if cat.id in first_category:
            yield f"categories[{i}].id: duplicate id {cat.id} (first at categories[{first_category[cat.id]}])"
        else:
            first_category[cat.id] = i
        if cat.name in first_name:
            yield (
                f"categories[{i}].name: duplicate name {json.dumps(cat.name)}"
                f" (first at categories[{first_name[cat.name]}])"
            )
        else:
            first_name[cat.name] = i

    first_annotation: dict[int, int] = {}
    for i, ann in enumerate(raw.annotations):
        if ann.id in first_annotation:
            first = first_annotation[ann.id]
            yield f"annotations[{i}].id: duplicate id {ann.id} (first at annotations[{first}])"
        else:
            first_annotation[ann.id] = i
        owner = images.get(ann.image_id)
        if owner is None:
            yield f"annotations[{i}].image_id: no image with id {ann.image_id}"
        if ann.category_id not in first_category:
            yield f"annotations[{i}].category_id: no category with id {ann.category_id}"
        w, h = ann.bbox[2], ann.bbox[3]
        if w < 0 or h < 0:
            yield f"annotations[{i}].bbox: negative {'width' if w < 0 else 'height'} in {_fmt_box(ann.bbox)}"
        elif owner is not None and not within_border(ann.bbox, owner.width, owner.height):
            yield (
                f"annotations[{i}].bbox: {_fmt_box(ann.bbox)} lies outside image {owner.id}"
                f" ({owner.width}x{owner.height}) by more than {BORDER_TOLERANCE_PX:g} pixel"
            )


def _to_document(raw: _RawDocument) -> CocoDocument:
    # Plain loops with positional arguments: this is the per-item Python cost that remains, so keep it lean.
    images = tuple(
        CocoImage(img.id, img.file_name, img.width, img.height, img.__pydantic_extra__ or {})
        for img in raw.images
    )
    annotations = tuple(
        CocoAnnotation(
            ann.id,
            ann.image_id,
            ann.category_id,
            (ann.bbox[0], ann.bbox[1], ann.bbox[2], ann.bbox[3]),
            ann.bbox[2] * ann.bbox[3] if ann.area is None else ann.area,
            ann.iscrowd,
            ann.__pydantic_extra__ or {},
        )
        for ann in raw.annotations
    )
    categories = tuple(CocoCategory(cat.id, cat.name, cat.supercategory or "") for cat in raw.categories)
    return CocoDocument(images, annotations, categories, raw.info or {})


# --- error wording -------------------------------------------------------------------------------


def _pydantic_problem(err: Any) -> str:
    """Turn one pydantic error into ``path: reason`` in the words of the JSON file, not of Python."""
    loc: Sequence[str | int] = err["loc"]
    kind: str = err["type"]
    value = err.get("input")
    ctx: dict[str, Any] = err.get("ctx") or {}
    last = loc[-1] if loc else None

    if kind == "missing":
        reason = "missing"
    elif last == "iscrowd" and kind in {"int_type", "greater_than_equal", "less_than_equal"}:
        reason = f"expected 0 or 1, got {_describe(value)}"
    elif last == "bbox" and kind in {"too_short", "too_long"}:
        got = ctx.get("actual_length")
        reason = f"expected 4 numbers, got {got if got is not None else len(value)}"
    elif kind == "int_type":
        reason = f"expected an integer, got {_describe(value)}"
    elif kind == "float_type":
        reason = f"expected a number, got {_describe(value)}"
    elif kind == "finite_number":
        reason = f"expected a finite number, got {value}"
    elif kind == "string_type":
        reason = f"expected a string, got {_describe(value)}"
    elif kind == "list_type":
        reason = f"expected an array, got {_describe(value)}"
    elif kind in {"dict_type", "model_type", "model_attributes_type"}:
        reason = f"expected an object, got {_describe(value)}"
    elif kind == "string_too_short":
        reason = "must not be empty"
    elif kind == "greater_than" and ctx.get("gt") == 0:
        reason = f"expected a positive value, got {_describe(value)}"
    elif kind == "greater_than":
        reason = f"expected more than {ctx.get('gt')}, got {_describe(value)}"
    elif kind == "greater_than_equal":
        reason = f"expected at least {ctx.get('ge')}, got {_describe(value)}"
    else:
        reason = str(err["msg"])
    return f"{_json_path(loc)}: {reason}"


def _json_path(loc: Sequence[str | int]) -> str:
    """``('annotations', 3, 'bbox')`` -> ``annotations[3].bbox``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "top level"


def _describe(value: Any) -> str:
    """A JSON-worded, short description of a value, e.g. ``string "5"``, ``number 2.5``, ``array``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"string {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fmt_box(bbox: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"


# --- writing -------------------------------------------------------------------------------------


def write_coco(doc: CocoDocument, path: Path) -> None:
    """Write ``doc`` to ``path`` as compact COCO JSON, atomically.

    The document is validated with the reader's own rules first, so anything written here reads back;
    a bad document raises InvalidInput and leaves ``path`` untouched. The bytes go to a temporary file in
    the same directory, are fsynced and renamed over ``path``, so a reader (or a crash) never sees half a
    file. OSErrors of the file system (no such directory, disk full) propagate unchanged.
    """
    path = Path(path)
    with _gc_paused():
        obj = _to_json(doc)
        _validate(obj, str(path))
        try:
            # allow_nan=False: NaN/Infinity are not JSON and pycocotools would read them as garbage.
            payload = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"{path}: cannot serialise as JSON ({exc})", hint="extra values must be JSON types"
            ) from exc
    _atomic_write(path, payload.encode("utf-8"))


def _to_json(doc: CocoDocument) -> dict[str, Any]:
    images = []
    for img in doc.images:
        item: dict[str, Any] = {
            "id": img.id,
            "file_name": img.file_name,
            "width": img.width,
            "height": img.height,
        }
        item.update((k, v) for k, v in img.extra.items() if k not in _IMAGE_KEYS)
        images.append(item)
    annotations = []
    for ann in doc.annotations:
        item = {
            "id": ann.id,
            "image_id": ann.image_id,
            "category_id": ann.category_id,
            "bbox": list(ann.bbox),
            "area": ann.area,
            "iscrowd": ann.iscrowd,
            "segmentation": [],
        }
        item.update((k, v) for k, v in ann.extra.items() if k not in _ANNOTATION_KEYS)
        annotations.append(item)
    categories = [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in doc.categories]
    return {
        "info": dict(doc.info),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _atomic_write(path: Path, payload: bytes) -> None:
    # Same directory as the target so that os.replace is a rename, not a copy across file systems.
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would (mkstemp forces 0o600).
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Includes KeyboardInterrupt: a stray temp file next to the user's data is the one thing to avoid.
        tmp.unlink(missing_ok=True)
        raise
