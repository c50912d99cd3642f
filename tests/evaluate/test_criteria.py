"""Gate criteria files: what parses, and what is rejected with the file and the offender named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvcycle.errors import InvalidInput
from cvcycle.evaluate.criteria import load_criteria, parse_criteria, parse_rule

GOOD = """
threshold: 0.4
bootstrap: 50
corner_cases: [night, lighting=dim]
criteria:
  - {metric: map50, slice: old, rule: "new >= old - 0.01"}
  - {metric: map50, slice: diff, rule: "new >= old"}
  - {metric: fp_per_1k_frames, slice: diff, rule: "new <= old"}
  - {metric: recall_fall, slice: old, rule: "new >= 0.9"}
  - {metric: recall_person, slice: night, rule: "new > old + 0.05"}
  - {metric: precision_fallen_person, slice: lighting=dim, rule: "new<.5"}
"""


def test_a_good_file_parses_with_defaults_filled_in() -> None:
    criteria = parse_criteria(GOOD, "gate.yaml")
    assert (criteria.threshold, criteria.bootstrap, criteria.seed) == (0.4, 50, 0)
    assert (criteria.old_slice, criteria.diff_slice) == ("test", "all")
    assert criteria.slices == ("old", "diff", "night", "lighting=dim")
    assert [c.metric for c in criteria.criteria][-2:] == ["recall_person", "precision_fallen_person"]
    first = criteria.criteria[0].rule
    assert (first.op, first.relative, first.offset) == (">=", True, -0.01)
    assert criteria.to_json()["criteria"][3] == {
        "metric": "recall_fall",
        "slice": "old",
        "rule": "new >= 0.9",
    }


def _with(criterion: str, extra: str = "") -> str:
    return f"{extra}criteria:\n  - {criterion}\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (_with('{metric: mAP50, slice: old, rule: "new >= old"}'), r"criteria\[0\]: unknown metric 'mAP50'"),
        (_with('{metric: recall_, slice: old, rule: "new >= old"}'), "unknown metric 'recall_'"),
        (_with('{metric: map50, slice: olds, rule: "new >= old"}'), "unknown slice 'olds'"),
        (_with('{metric: map50, slice: night, rule: "new >= old"}'), "unknown slice 'night'"),
        (_with('{metric: map50, slice: old, rule: "new => old"}'), "malformed rule 'new => old'"),
        (_with('{metric: map50, slice: old, rule: "new >= older"}'), "malformed rule 'new >= older'"),
        (_with('{metric: map50, slice: old, rule: "old <= new"}'), "malformed rule 'old <= new'"),
        (_with('{metric: map50, slice: old, rule: "new >= old * 2"}'), "malformed rule"),
        (_with('{metric: map50, slice: old, rule: "new == 1"}'), "malformed rule"),
        (_with("{metric: map50, slice: old}"), r"criteria\[0\]\.rule: Field required"),
        (_with('{metric: map50, slice: old, rule: "new >= old", weight: 2}'), r"criteria\[0\]\.weight"),
        (_with('{metric: map50, slice: old, rule: "new >= old"}', "threshold: 1.5\n"), "threshold"),
        (_with('{metric: map50, slice: old, rule: "new >= old"}', "treshold: 0.5\n"), "treshold"),
        (
            _with('{metric: map50, slice: old, rule: "new >= old"}', "corner_cases: [diff]\n"),
            "corner case 'diff'",
        ),
        ("criteria: []\n", "criteria: List should have at least 1 item"),
        ("threshold: 0.5\n", "criteria: Field required"),
        ("- just\n- a list\n", "a mapping"),
        ("criteria: [\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_rejected_naming_the_file_and_the_offender(text: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error) as info:
        parse_criteria(text, "gate.yaml")
    assert info.value.message.startswith("gate.yaml: ")


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        (_with('{metric: mAP50, slice: old, rule: "new >= old"}'), "map, map50, precision, recall"),
        (
            _with('{metric: map50, slice: olds, rule: "new >= old"}', "corner_cases: [night]\n"),
            "old, diff, night",
        ),
        (_with('{metric: map50, slice: old, rule: "new => old"}'), "new >= old - 0.01"),
    ],
)
def test_the_hint_lists_what_is_allowed(text: str, allowed: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_criteria(text, "gate.yaml")
    assert allowed in (info.value.hint or "")


def test_a_class_metric_naming_an_unknown_class_is_rejected() -> None:
    criteria = parse_criteria(_with('{metric: recall_persn, slice: old, rule: "new >= old"}'), "gate.yaml")
    with pytest.raises(InvalidInput, match="'recall_persn' names unknown class 'persn'") as info:
        criteria.check_classes(["person", "fallen_person"])
    assert "fallen_person, person" in (info.value.hint or "")
    parse_criteria(_with('{metric: recall_person, slice: old, rule: "new >= old"}')).check_classes(["person"])


@pytest.mark.parametrize(
    ("rule", "new", "old", "holds"),
    [
        ("new >= old - 0.01", 0.795, 0.80, True),
        ("new >= old - 0.01", 0.789, 0.80, False),
        ("new >= old", 0.7, 0.1 + 0.6, True),  # equal up to rounding noise
        ("new > old", 0.5, 0.5, False),
        ("new <= old + 5", 14.9, 10.0, True),
        ("new < old", 10.0, 10.0, False),
        ("new >= 0.9", 0.9, None, True),
        ("new >= 0.9", 0.89, None, False),
        ("new <= 1e2", 100.0, None, True),
        ("new > -1", -0.5, None, True),
    ],
)
def test_rules(rule: str, new: float, old: float | None, holds: bool) -> None:
    assert parse_rule(rule).holds(new, old) is holds


def test_load_criteria_reads_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(GOOD)
    assert load_criteria(path).source == str(path)
    with pytest.raises(InvalidInput, match="cannot read criteria file"):
        load_criteria(tmp_path / "missing.yaml")
