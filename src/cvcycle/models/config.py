"""The training config schema: everything a model is built and trained with, besides its data.

It lives with the adapters because they build modules from it, and the registry rebuilds a
version's module from the recorded config; :mod:`cvcycle.train.config` owns the precedence of its
layers (defaults < file < parent run < --set).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cvcycle.refs import is_valid_name


class TrainConfig(BaseModel):
    """Everything a training run is shaped by, besides its data. Defaults fit a 2-core CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str = Field(default="detector", description="Model adapter (see `cvcycle model adapters`).")
    model: str = Field(default="detector", description="Registry name of the model this run versions.")
    classes: tuple[str, ...] | None = Field(
        default=None, description="Class list, in order; default: the classes of the training slice, sorted."
    )
    epochs: int = Field(default=24, ge=1, description="Most passes over the training slice.")
    max_seconds: float | None = Field(
        default=60.0, gt=0, description="Training time budget in seconds; none for no budget."
    )
    # 16 on a CPU: over five synthetic worlds, 60 s runs at batch 16 reached val/test mAP50
    # 0.717/0.644, at 8 0.679/0.586 and at 32 0.693/0.564 (bench/detector.py).
    batch_size: int = Field(default=16, ge=1, description="Frames per training step.")
    lr: float = Field(default=4e-3, gt=0, description="Peak learning rate (AdamW, cosine schedule).")
    weight_decay: float = Field(default=1e-4, ge=0)
    seed: int = Field(default=0, ge=0)
    input_size: tuple[int, int] = Field(
        default=(160, 224),
        description="Network input (height, width), multiples of 32; 160x224 or [160, 224].",
    )
    width: int = Field(default=16, ge=4, le=512, description="Channels of the first stage.")
    max_detections: int = Field(default=100, ge=1, le=10_000, description="Boxes per image (K).")
    score_threshold: float = Field(default=0.3, ge=0, le=1, description="Operating threshold.")
    device: str = Field(default="cpu", description="cpu, cuda or cuda:N (no silent fallback).")
    num_workers: int = Field(default=2, ge=0, description="Frame-decoding workers.")
    augment: bool = Field(default=True, description="Mosaic, flip/zoom/shift and colour jitter.")
    validate_from: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Validate each epoch that ends past this share of the run (of its planned steps or "
        "time budget, whichever is further along); the last epoch always is. 0 validates every epoch.",
    )
    init_from: str | None = Field(
        default=None,
        description="Start from this model version's weights (fine-tuning), e.g. detector@1; its "
        "adapter, classes, width and input size must match. An alias is recorded as the version it named.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific settings.")

    @field_validator("model", "adapter")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_valid_name(value):
            raise ValueError("use letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("input_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = re.split(r"[x,]", value.strip().strip("[]()"))
            if len(parts) != 2:
                raise ValueError("write HEIGHTxWIDTH, e.g. 192x256")
            return tuple(p.strip() for p in parts)
        return value

    @field_validator("input_size")
    @classmethod
    def _positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 16 or max(value) > 8192:
            raise ValueError("height and width must be between 16 and 8192")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError("use cpu, cuda or cuda:N")
        return value

    def to_record(self) -> dict[str, Any]:
        """The JSON form stored on runs and model versions (and read back by ``model_validate``)."""
        return self.model_dump(mode="json")
