"""The demo end to end on a tiny budget: every stage runs and every figure it reports is measured."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.demo.demo import KINDS, DemoOptions, run_demo
from cvcycle.settings import Settings

# The loop on a tiny budget trains models too weak for the demo's own gate, so each run states
# criteria whose verdict is known: one any pair of models meets (a model that finds nothing scores
# 0.0, so "new >= old - 1" always holds), and one no pair can meet (mAP50 never exceeds 1).
ALWAYS_PASSES = """\
threshold: {threshold}
bootstrap: 50
old_slice: test
criteria:
  - {{metric: map50, slice: old, rule: "new >= old - 1"}}
"""
NEVER_PASSES = """\
threshold: {threshold}
bootstrap: 50
old_slice: test
criteria:
  - {{metric: map50, slice: diff, rule: "new >= old + 2"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "criteria, passes", [(ALWAYS_PASSES, True), (NEVER_PASSES, False)], ids=["pass", "fail"]
)
def test_demo_runs_the_whole_loop(tmp_path: Path, criteria: str, passes: bool) -> None:
    options = DemoOptions(
        day_clips=5,
        stream_clips=1,
        clip_seconds=4.0,
        train_epochs=1,
        finetune_epochs=1,
        gate_criteria=criteria,
    )
    report = run_demo(Settings(home=tmp_path / "demo"), options)
    names = [s.name for s in report.stages]
    for expected in (
        "train detector@1 on home@1",
        "export + verify detector@1",
        "stream-1: served model finds objects",
        "stream-1: operators review",
        "commit home@2",
        "train detector@2 on home@2, starting from detector@1",
        "gate detector@2 against detector:production",
        "stream-2: operators review",
    ):
        assert expected in names
    assert all(s.kind in KINDS and s.seconds >= 0 for s in report.stages)
    assert report.gate is not None
    assert report.gate["passed"] is passes
    assert report.gate["verdict"] == ("PASS" if passes else "FAIL")
    assert report.deployed is passes
    assert report.models["v2"]["init_from"] == "detector@1"
    markdown = (tmp_path / "demo" / "gate" / "gate-report.md").read_text()
    assert "old model (detector@1)" in markdown and "new model (detector@2)" in markdown
    # The second stream is served by the winner: detector@2 after a pass, detector@1 after a fail.
    assert "detector@1" in report.rates
    assert ("detector@2" in report.rates) is passes
    assert ("publish detector@2 -> production, server swaps" in names) is passes
    if not passes:
        (reason,) = report.gate["reasons"]
        assert reason.startswith("map50 on diff: new ") and reason.endswith("does not hold")
    before = report.rates["detector@1"]
    assert before["events"] > 0 and before["frames_reviewed"] > 0
    totals = report.totals()
    assert totals["total"] == pytest.approx(sum(s.seconds for s in report.stages), abs=0.05)


def test_demo_refuses_a_home_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    result = CliRunner().invoke(app, ["demo", "--home", str(tmp_path / "used")])
    assert result.exit_code == 2 and "is not empty" in result.output


def test_the_closing_figures_fit_a_narrow_log(capsys: pytest.CaptureFixture[str]) -> None:
    from cvcycle.cli.demo import print_report
    from cvcycle.demo.demo import DemoReport, Stage

    row = {
        "events": 150,
        "detections_reviewed": 130,
        "false_detection": 31,
        "false_rate": 0.238,
        "frames_reviewed": 130,
        "missed_detection": 140,
        "missed_rate": 1.077,
        "missed_share": 0.586,
    }
    report = DemoReport(
        stages=[Stage("train", "training", 2.0)],
        rates={"detector@1": row, "detector@2": {**row, "false_rate": 0.149, "missed_share": None}},
    )
    print_report(report)
    out = capsys.readouterr().out
    assert "before (detector@1)" in out and "after (detector@2)" in out
    assert "23.8%" in out and "14.9%" in out and "58.6%" in out
    assert "…" not in out  # nothing cut at 80 columns
    assert "deployed detector@2: no" in out and "total 2.0s" in out
