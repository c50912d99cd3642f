"""The gate report: what was compared, the 2x2 table, every criterion with its numbers, the verdict.

One record, two renderings: ``to_json()`` for machines (stored on the model version, written as
``gate-report.json``) and ``to_markdown()`` for the reader who wants to see why.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcycle.evaluate.bootstrap import Interval
from cvcycle.evaluate.criteria import DIFF, OLD
from cvcycle.evaluate.metrics import DetectionMetrics

ROLES = (("old", "old model"), ("new", "new model"))
HEADLINE_METRICS = ("map", "map50", "precision", "recall")
TAIL_METRICS = ("fp_per_1k_frames", "fp_per_1k_all_frames", "recall_fall")


@dataclass(frozen=True)
class CriterionResult:
    """One criterion checked: both models' figures, the bound, the difference and its interval."""

    metric: str
    slice: str
    rule: str
    old: float | None
    new: float | None
    bound: float | None
    interval: Interval | None
    passed: bool
    reason: str
    skipped: bool = False  # the criterion does not apply (a skipped criterion does not fail the gate)

    @property
    def verdict(self) -> str:
        return "skipped" if self.skipped else ("pass" if self.passed else "FAIL")

    @property
    def difference(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "rule": self.rule,
            "old": _num(self.old),
            "new": _num(self.new),
            "difference": _num(self.difference),
            "bound": _num(self.bound),
            "ci95": None if self.interval is None else self.interval.to_json(),
            "passed": self.passed,
            "skipped": self.skipped,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GateReport:
    candidate: str
    production: str
    criteria: dict[str, Any]
    sets: dict[str, dict[str, Any]]
    table: dict[str, dict[str, DetectionMetrics]]  # set name -> "old" | "new" -> metrics
    results: tuple[CriterionResult, ...]
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def reasons(self) -> list[str]:
        """Why the gate failed (empty when it passed)."""
        return [f"{r.metric} on {r.slice}: {r.reason}" for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "PASS" if self.passed else "FAIL",
            "passed": self.passed,
            "reasons": self.reasons,
            "models": {"old": self.production, "new": self.candidate},
            "criteria_file": self.criteria,
            "sets": self.sets,
            "table": {
                name: {role: metrics.to_json() for role, metrics in cells.items()}
                for name, cells in self.table.items()
            },
            "criteria": [r.to_json() for r in self.results],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def table_metrics(self) -> list[str]:
        """The rows of the 2x2 table: headline figures, per-class recall and precision, the rest."""
        classes = sorted({c for cells in self.table.values() for m in cells.values() for c in m.per_class})
        per_class = [f"{kind}_{c}" for c in classes for kind in ("recall", "precision")]
        return [*HEADLINE_METRICS, *per_class, *TAIL_METRICS]

    def to_markdown(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"# Regression gate: {self.candidate} (new) vs {self.production} (old)",
            "",
            f"**Verdict: {verdict}**",
            "",
        ]
        if self.reasons:
            lines += ["Failed criteria:", "", *[f"- {reason}" for reason in self.reasons], ""]
        else:
            applied = [r for r in self.results if not r.skipped]
            skipped = (
                f" ({len(self.results) - len(applied)} skipped as not applicable)"
                if len(applied) < len(self.results)
                else ""
            )
            lines += [f"All {len(applied)} applicable criteria hold{skipped}.", ""]
        lines += [
            "## Data",
            "",
            "| set | what | frames | by split | boxes | falls |",
            "| --- | --- | ---: | --- | ---: | ---: |",
        ]
        for name, info in self.sets.items():
            splits = ", ".join(f"{k} {v}" for k, v in info.get("splits", {}).items() if v) or "-"
            lines.append(
                f"| {_label(name)} | {info['description']} | {info['frames']} | {splits} | {info['boxes']} "
                f"| {info['falls']} |"
            )
        columns = list(self.table)
        lines += [
            "",
            f"## Models x data (threshold {self.criteria['threshold']})",
            "",
            "| metric | model | " + " | ".join(_label(c) for c in columns) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in columns) + " |",
        ]
        for metric in self.table_metrics():
            for i, (role, role_label) in enumerate(ROLES):
                model = self.production if role == "old" else self.candidate
                cells = " | ".join(_fmt(self.table[c][role].value(metric)) for c in columns)
                lines.append(f"| {metric if i == 0 else ''} | {role_label} ({model}) | {cells} |")
        lines += [
            "",
            "## Criteria",
            "",
            "| # | metric | slice | old | new | new - old [95% CI] | rule | verdict |",
            "| ---: | --- | --- | ---: | ---: | --- | --- | --- |",
        ]
        for i, r in enumerate(self.results, start=1):
            ci = "" if r.interval is None else f" [{_fmt(r.interval.low)}, {_fmt(r.interval.high)}]"
            lines.append(
                f"| {i} | {r.metric} | {_label(r.slice)} | {_fmt(r.old)} | {_fmt(r.new)} "
                f"| {_fmt(r.difference, signed=True)}{ci} | `{r.rule}` "
                f"| {'**FAIL**' if r.verdict == 'FAIL' else r.verdict}: {r.reason} |"
            )
        lines += [
            "",
            f"Confidence intervals: {self.criteria['bootstrap']} paired bootstrap resamples of the frames "
            "(of the falls for recall_fall), both models scored on each resample; 95% percentile interval. "
            "Undefined figures (nothing to divide by) show as n/a and fail their criterion.",
            "",
        ]
        return "\n".join(lines)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``gate-report.md`` and ``gate-report.json`` into ``directory``; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        markdown, data = directory / "gate-report.md", directory / "gate-report.json"
        texts = {markdown: self.to_markdown(), data: json.dumps(self.to_json(), indent=2) + "\n"}
        for path, text in texts.items():
            # Written beside and renamed, so a reader never sees half a report.
            partial = path.with_name(f".{path.name}.partial")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, path)
        return markdown, data


def _label(name: str) -> str:
    return {OLD: "old data", DIFF: "diff"}.get(name, name)


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
