"""The draft an annotator saves: boxes on the task's frame, action segments and tracks of its video.

Shapes are checked by pydantic (a box with a non-positive size names its field, e.g.
``boxes.0.box.w``); whether the work fits the item (inside the frame, within the video's frames)
is checked by ``check_fits`` against the item's size, with the same kind of field path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cvcycle.annotate.agreement import ClassRange
from cvcycle.annotate.tracks import Keyframe
from cvcycle.boxes import MAX_CLASS_NAME_LENGTH, XYWH, Box, fit_box
from cvcycle.errors import InvalidInput

# The class-name rule of ``cvcycle.boxes.check_class_name``, for the JSON schema.
ClassName = Annotated[str, Field(min_length=1, max_length=MAX_CLASS_NAME_LENGTH, pattern=r"^\S(.*\S)?$")]


class BoxGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    w: float = Field(gt=0, allow_inf_nan=False, description="width in pixels, positive")
    h: float = Field(gt=0, allow_inf_nan=False, description="height in pixels, positive")

    def xywh(self) -> XYWH:
        return (self.x, self.y, self.w, self.h)

    def fit(self, cls: str, width: int, height: int, where: str) -> BoxGeometry:
        """This box fitted into the frame by ``cvcycle.boxes.fit_box``."""
        box = fit_box(Box(cls, *self.xywh()), width, height, where)
        return self if box.xywh() == self.xywh() else BoxGeometry(x=box.x, y=box.y, w=box.w, h=box.h)


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

    def class_boxes(self) -> list[Box]:
        return [Box(b.cls, *b.box.xywh()) for b in self.boxes]

    def class_ranges(self) -> list[ClassRange]:
        return [ClassRange(s.cls, s.start, s.end) for s in self.segments]


def check_fits(draft: Draft, width: int, height: int, frame_count: int) -> Draft:
    """The draft with boxes clipped to the frame; InvalidInput naming the field if something is outside."""
    boxes = [
        b.model_copy(update={"box": b.box.fit(b.cls, width, height, f"boxes.{i}.box")})
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
            keyframes.append(k.model_copy(update={"box": k.box.fit(t.cls, width, height, f"{where}.box")}))
        tracks.append(t.model_copy(update={"keyframes": keyframes}))
    return Draft(boxes=boxes, segments=list(draft.segments), tracks=tracks)
