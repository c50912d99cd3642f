"""The draft an annotator saves: boxes on the task's frame, action segments and tracks of its video.

Shapes are checked by pydantic (a box with a non-positive size names its field, e.g.
``boxes.0.box.w``); whether the work fits the item (inside the frame, within the video's frames)
is checked by ``check_fits`` against the item's size, with the same kind of field path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cvcycle.annotate.agreement import ClassBox, ClassRange
from cvcycle.annotate.tracks import Keyframe
from cvcycle.errors import InvalidInput

# Annotators nudge boxes by hand; this far past the border is a slip and is clipped, further is an error.
BORDER_TOLERANCE_PX = 1.0
ClassName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]


class BoxGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    w: float = Field(gt=0, allow_inf_nan=False, description="width in pixels, positive")
    h: float = Field(gt=0, allow_inf_nan=False, description="height in pixels, positive")

    def xywh(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)


class DraftBox(BaseModel):
    """A box on the task's frame. ``source`` stays ``pseudo`` until a person touches the box."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=40)
    cls: ClassName
    box: BoxGeometry
    source: Literal["pseudo", "human", "import"] = "human"
    score: float | None = Field(default=None, ge=0, le=1)


class DraftSegment(BaseModel):
    """An action of ``cls`` over the inclusive frame range ``start .. end``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=40)
    cls: ClassName
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    source: Literal["pseudo", "human", "import"] = "human"

    @field_validator("end")
    @classmethod
    def _end_not_before_start(cls, end: int, info: Any) -> int:
        start = info.data.get("start")
        if start is not None and end < start:
            raise ValueError(f"end frame {end} is before start frame {start}")
        return end


class DraftKeyframe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frame: int = Field(ge=0)
    box: BoxGeometry


class DraftTrack(BaseModel):
    """One object over frames: boxes on keyframes, linear in between (see ``tracks.py``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=40)
    cls: ClassName
    keyframes: list[DraftKeyframe] = Field(min_length=1, max_length=10_000)

    @field_validator("keyframes")
    @classmethod
    def _distinct_frames(cls, keyframes: list[DraftKeyframe]) -> list[DraftKeyframe]:
        seen: set[int] = set()
        for k in keyframes:
            if k.frame in seen:
                raise ValueError(f"two keyframes at frame {k.frame}")
            seen.add(k.frame)
        return sorted(keyframes, key=lambda k: k.frame)

    def keyframe_values(self) -> list[Keyframe]:
        return [Keyframe(k.frame, k.box.xywh()) for k in self.keyframes]


class Draft(BaseModel):
    """Everything one annotator has done on one task."""

    model_config = ConfigDict(extra="forbid")

    boxes: list[DraftBox] = Field(default_factory=list, max_length=5_000)
    segments: list[DraftSegment] = Field(default_factory=list, max_length=5_000)
    tracks: list[DraftTrack] = Field(default_factory=list, max_length=1_000)

    def class_boxes(self) -> list[ClassBox]:
        return [ClassBox(b.cls, b.box.xywh()) for b in self.boxes]

    def class_ranges(self) -> list[ClassRange]:
        return [ClassRange(s.cls, s.start, s.end) for s in self.segments]


def _check_box(box: BoxGeometry, width: int, height: int, where: str) -> BoxGeometry:
    tol = BORDER_TOLERANCE_PX
    if box.x < -tol or box.y < -tol or box.x + box.w > width + tol or box.y + box.h > height + tol:
        raise InvalidInput(
            f"{where}: box x={box.x:g} y={box.y:g} w={box.w:g} h={box.h:g} lies outside the "
            f"{width}x{height} frame",
            hint="draw the box inside the image",
        )
    x0, y0 = max(box.x, 0.0), max(box.y, 0.0)
    x1, y1 = min(box.x + box.w, float(width)), min(box.y + box.h, float(height))
    return BoxGeometry(x=x0, y=y0, w=x1 - x0, h=y1 - y0)


def check_fits(draft: Draft, width: int, height: int, frame_count: int) -> Draft:
    """The draft with boxes clipped to the frame; InvalidInput naming the field if something is outside."""
    boxes = [
        b.model_copy(update={"box": _check_box(b.box, width, height, f"boxes.{i}.box")})
        for i, b in enumerate(draft.boxes)
    ]
    for i, s in enumerate(draft.segments):
        if s.end >= frame_count:
            raise InvalidInput(
                f"segments.{i}.end: frame {s.end} is past the video's last frame {frame_count - 1}"
            )
    tracks = []
    for i, t in enumerate(draft.tracks):
        keyframes = []
        for j, k in enumerate(t.keyframes):
            where = f"tracks.{i}.keyframes.{j}"
            if k.frame >= frame_count:
                raise InvalidInput(
                    f"{where}.frame: frame {k.frame} is past the video's last frame {frame_count - 1}"
                )
            keyframes.append(k.model_copy(update={"box": _check_box(k.box, width, height, f"{where}.box")}))
        tracks.append(t.model_copy(update={"keyframes": keyframes}))
    return Draft(boxes=boxes, segments=list(draft.segments), tracks=tracks)
