"""Gate criteria: the declarative YAML file, its validation, and the rules a criterion applies.

A criteria file::

    threshold: 0.5          # operating threshold
    bootstrap: 200          # paired resamples for the confidence intervals (0: none)
    seed: 0                 # of the resampling, so a report can be reproduced
    old_slice: test         # slice of the production model's dataset version: "old data"
    diff_slice: all         # slice of the candidate's version the added frames must lie in: "the diff"
    corner_cases: [night]   # named slices or filters (lighting=night) of the candidate's version
    criteria:
      - {metric: map50, slice: old, rule: "new >= old - 0.01"}
      - {metric: recall_fall, slice: old, rule: "new >= 0.9"}

``diff_slice`` defaults to ``all``: every added frame, as the diff is defined. The candidate was
trained on the training split of its version, which usually holds most of the added frames, so on
the diff it is partly scored on frames it has seen; the report shows each set's frames per split.
When the added media include held-out ones, ``diff_slice: test`` scores both models on those only.

Rules are ``new <op> old [+|- number]`` or ``new <op> number`` with ``op`` one of ``>= <= > <``.
Anything unknown (a metric, a slice, a rule, a key) is rejected with the file and the offender.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvcycle.errors import InvalidInput
from cvcycle.evaluate.metrics import CLASS_METRIC_PREFIXES, METRICS, is_metric_name

OLD, DIFF = "old", "diff"
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RULE = re.compile(
    rf"^\s*new\s*(?P<op>>=|<=|>|<)\s*"
    rf"(?:(?P<old>old)\s*(?:(?P<sign>[+-])\s*(?P<offset>{_NUMBER}))?|(?P<number>[+-]?{_NUMBER}))\s*$"
)
RULE_FORMS = "new >= old, new >= old - 0.01, new <= old + 5, new >= 0.9 (ops >=, <=, >, <)"
ALLOWED_METRICS = f"{', '.join(METRICS)}, recall_<class>, precision_<class>"


@dataclass(frozen=True)
class Rule:
    """``new <op> old + offset`` when ``relative``, else ``new <op> offset``."""

    text: str
    op: str
    relative: bool
    offset: float

    def bound(self, old: float | None) -> float | None:
        """The number ``new`` is compared with."""
        if not self.relative:
            return self.offset
        return None if old is None else old + self.offset

    def holds(self, new: float, old: float | None) -> bool:
        bound = self.bound(old)
        if bound is None:
            raise ValueError("a relative rule needs the old value")
        # Rounding noise must not flip a verdict: "new >= old" holds for two equal figures computed
        # from different sums.
        tolerance = 1e-9 * max(1.0, abs(bound))
        if self.op in (">=", "<="):
            return _OPS[self.op](new + (tolerance if self.op == ">=" else -tolerance), bound)
        return _OPS[self.op](new, bound)


def parse_rule(text: str) -> Rule:
    """Parse ``new >= old - 0.01``; raises ValueError on anything else."""
    match = _RULE.match(text)
    if not match:
        raise ValueError(text)
    if match["old"]:
        offset = float(match["offset"] or 0.0) * (-1.0 if match["sign"] == "-" else 1.0)
        return Rule(" ".join(text.split()), match["op"], True, offset)
    return Rule(" ".join(text.split()), match["op"], False, float(match["number"]))


@dataclass(frozen=True)
class GateCriterion:
    metric: str
    slice: str
    rule: Rule

    def to_json(self) -> dict[str, str]:
        return {"metric": self.metric, "slice": self.slice, "rule": self.rule.text}


@dataclass(frozen=True)
class GateCriteria:
    """A validated criteria file."""

    threshold: float
    bootstrap: int
    seed: int
    old_slice: str
    diff_slice: str
    corner_cases: tuple[str, ...]
    criteria: tuple[GateCriterion, ...]
    source: str = "criteria"

    @property
    def slices(self) -> tuple[str, ...]:
        return (OLD, DIFF, *self.corner_cases)

    def check_classes(self, classes: Iterable[str]) -> None:
        """Reject ``recall_<class>`` / ``precision_<class>`` criteria naming a class nobody knows."""
        known = sorted(set(classes))
        for i, criterion in enumerate(self.criteria):
            if criterion.metric in METRICS:
                continue
            prefix = next(p for p in CLASS_METRIC_PREFIXES if criterion.metric.startswith(p))
            cls = criterion.metric[len(prefix) :]
            if cls not in known:
                raise InvalidInput(
                    f"{self.source}: criteria[{i}]: metric {criterion.metric!r} names unknown class {cls!r}",
                    hint=f"the models and the data know {', '.join(known) or 'no classes'}",
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threshold": self.threshold,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "old_slice": self.old_slice,
            "diff_slice": self.diff_slice,
            "corner_cases": list(self.corner_cases),
            "criteria": [c.to_json() for c in self.criteria],
        }


class _CriterionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    slice: str
    rule: str


class _CriteriaFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    bootstrap: int = Field(200, ge=0, le=100_000)
    seed: int = 0
    old_slice: str = "test"
    diff_slice: str = "all"
    corner_cases: list[str] = Field(default_factory=list)
    criteria: list[_CriterionFile] = Field(min_length=1)


def _validation_message(source: str, exc: ValidationError) -> InvalidInput:
    error = exc.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidInput(
        f"{source}: {where or 'file'}: {error['msg']}{more}",
        hint="keys: threshold, bootstrap, seed, old_slice, diff_slice, corner_cases, "
        "criteria (each {metric, slice, rule})",
    )


def parse_criteria(text: str, source: str = "criteria") -> GateCriteria:
    """Parse and validate a criteria file's text; ``source`` names it in every error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{source}: a criteria file is a mapping with a 'criteria' list",
            hint="see `cvcycle gate --help` for an example",
        )
    try:
        parsed = _CriteriaFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_message(source, exc) from None
    corner_cases = tuple(c.strip() for c in parsed.corner_cases)
    for name in corner_cases:
        if not name or name in (OLD, DIFF):
            raise InvalidInput(
                f"{source}: corner case {name!r} is not allowed",
                hint="name a slice of the dataset or a filter such as lighting=night; old and diff are taken",
            )
    slices = (OLD, DIFF, *corner_cases)
    criteria = []
    for i, item in enumerate(parsed.criteria):
        where = f"{source}: criteria[{i}]"
        if not is_metric_name(item.metric):
            raise InvalidInput(
                f"{where}: unknown metric {item.metric!r}", hint=f"metrics are {ALLOWED_METRICS}"
            )
        if item.slice not in slices:
            raise InvalidInput(
                f"{where}: unknown slice {item.slice!r}",
                hint=f"slices are {', '.join(slices)} (add corner cases under corner_cases)",
            )
        try:
            rule = parse_rule(item.rule)
        except ValueError:
            raise InvalidInput(
                f"{where}: malformed rule {item.rule!r}", hint=f"write rules like {RULE_FORMS}"
            ) from None
        criteria.append(GateCriterion(item.metric, item.slice, rule))
    return GateCriteria(
        threshold=parsed.threshold,
        bootstrap=parsed.bootstrap,
        seed=parsed.seed,
        old_slice=parsed.old_slice,
        diff_slice=parsed.diff_slice,
        corner_cases=corner_cases,
        criteria=tuple(criteria),
        source=source,
    )


def load_criteria(path: Path) -> GateCriteria:
    """Read and validate a criteria file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read criteria file {path}: {exc.strerror or exc}") from None
    return parse_criteria(text, source=str(path))
