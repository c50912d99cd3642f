"""Paired bootstrap confidence intervals for the difference new - old of a metric on one frame set.

Each resample draws frame indices with replacement and scores both models on the same draw, so the
interval reflects how much the difference depends on which frames happened to be in the set, not
the spread of either model alone. ``recall_fall`` counts falls, not frames, so its resamples draw
falls (again the same draw for both models). AP is recomputed on every resample by faster-coco-eval's
accumulate step over per-image results computed once (see ``cvcycle.evaluate.metrics``).

Frames of one video are correlated, so a frame-level interval is narrower than a per-video one
would be: read it as the uncertainty from the choice of frames within these videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvcycle.evaluate.metrics import AP_METRICS, MatchedDetections

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; ``resamples`` counts the draws where the difference was defined."""

    low: float
    high: float
    resamples: int

    def contains(self, value: float) -> bool:
        return self.low - 1e-12 <= value <= self.high + 1e-12

    def to_json(self) -> dict[str, Any]:
        return {"low": round(self.low, 6), "high": round(self.high, 6), "resamples": self.resamples}


def paired_bootstrap(
    new: MatchedDetections,
    old: MatchedDetections,
    metrics: Sequence[str],
    *,
    resamples: int,
    seed: int | Sequence[int] = 0,
) -> dict[str, Interval | None]:
    """95% intervals of ``new - old`` for each metric; None where no resample defined the difference."""
    if new.frames != old.frames or new.falls != old.falls:
        raise ValueError("the two models must be matched on the same frames and falls")
    diffs: dict[str, list[float]] = {m: [] for m in metrics}
    n_frames, n_falls = new.frames, new.falls
    if resamples > 0 and n_frames > 0:
        with_ap = any(m in AP_METRICS for m in metrics)
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            frames = rng.integers(0, n_frames, n_frames)
            falls = rng.integers(0, n_falls, n_falls) if n_falls else None
            new_m = new.summary(frames, falls, with_ap=with_ap)
            old_m = old.summary(frames, falls, with_ap=with_ap)
            for metric in metrics:
                a, b = new_m.value(metric), old_m.value(metric)
                if a is not None and b is not None:
                    diffs[metric].append(a - b)
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    out: dict[str, Interval | None] = {}
    for metric, values in diffs.items():
        if not values:
            out[metric] = None
            continue
        low, high = np.percentile(np.asarray(values), [tail, 100.0 - tail])
        out[metric] = Interval(float(low), float(high), len(values))
    return out
