"""``Detections``: the one value type for boxes a model found in one image.

Every producer (a PyTorch adapter, an ONNX session, the inference server's clients, production
events) and every consumer (evaluation, feedback, the UI) speaks it, so conversions live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes in pixel coordinates of one image: ``xyxy`` (N, 4) float32, ``scores`` (N,), ``class_ids`` (N,).

    ``class_names`` maps a class id to its name (the model's class list).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int64).reshape(-1))
        n = len(self.xyxy)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError(
                f"detections disagree in length: {n} boxes, {len(self.scores)} scores, "
                f"{len(self.class_ids)} classes"
            )

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(class_names)
        )

    @property
    def xywh(self) -> np.ndarray:
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out

    def above(self, threshold: float) -> Detections:
        """The detections scoring at least ``threshold``."""
        keep = self.scores >= threshold
        return Detections(self.xyxy[keep], self.scores[keep], self.class_ids[keep], self.class_names)

    def class_name(self, i: int) -> str:
        cid = int(self.class_ids[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def to_json(self) -> list[dict[str, Any]]:
        """``[{"cls", "score", "box": [x, y, w, h]}]``: the form used by events and the API."""
        return [
            {
                "cls": self.class_name(i),
                "score": round(float(self.scores[i]), 5),
                "box": [round(float(v), 2) for v in self.xywh[i]],
            }
            for i in range(len(self))
        ]

    @classmethod
    def from_json(cls, items: Sequence[dict[str, Any]], class_names: Sequence[str]) -> Detections:
        """Inverse of ``to_json``; unknown class names raise ValueError naming them."""
        names = tuple(class_names)
        index = {name: i for i, name in enumerate(names)}
        xyxy, scores, ids = [], [], []
        for item in items:
            if item["cls"] not in index:
                raise ValueError(f"unknown class {item['cls']!r}; the model's classes are {', '.join(names)}")
            x, y, w, h = (float(v) for v in item["box"])
            xyxy.append((x, y, x + w, y + h))
            scores.append(float(item.get("score", 1.0)))
            ids.append(index[item["cls"]])
        if not xyxy:
            return cls.empty(names)
        return cls(np.array(xyxy), np.array(scores), np.array(ids), names)
