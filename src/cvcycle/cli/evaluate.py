"""``cvcycle evaluate`` (a model on a slice of a dataset version) and ``cvcycle gate`` (new vs production).

Both pass the arguments as written to one service each (``evaluate_model``, ``gate_models``), which
checks them before it loads any model code: a typo in a criteria file or in a dataset reference is
reported without loading a model.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cvcycle.cli.common import JsonOption, console, database, file_progress, handle_errors, print_json, store
from cvcycle.evaluate.criteria import ALLOWED_METRICS
from cvcycle.evaluate.gate import gate_models, load_criteria
from cvcycle.evaluate.service import DEFAULT_BATCH_SIZE, EvaluationResult, evaluate_model

GATE_EPILOG = (
    "The criteria file (YAML) holds threshold, bootstrap (resamples), seed, old_slice (test by default), "
    "diff_slice (all by default), corner_cases (slices or filters such as lighting=night) and criteria, "
    'a list of {metric, slice, rule}: e.g. {metric: map50, slice: old, rule: "new >= old - 0.01"} or '
    '{metric: recall_fall, slice: diff, rule: "new >= 0.9"}. Metrics: '
    f"{ALLOWED_METRICS}. Slices: old, diff and the corner cases."
)


@handle_errors
def evaluate(
    model_ref: str = typer.Argument(..., help="The model: detector@3 or detector:production."),
    dataset: str = typer.Option(..., "--dataset", help="The data: NAME@V (or NAME for the working copy)."),
    slice: str = typer.Option(..., "--slice", help="A slice (test, val, ...) or a filter (lighting=night)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Operating threshold for precision and recall."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Images per forward pass."),
    as_json: bool = JsonOption,
) -> None:
    """COCO mAP and AP50, precision and recall at the threshold, FP per 1,000 frames, fall recall."""
    with file_progress(not as_json) as progress:
        result = evaluate_model(
            database(),
            store(),
            model_ref,
            dataset,
            slice,
            threshold=threshold,
            batch_size=batch_size,
            progress=progress,
        )
    if as_json:
        print_json(result.to_json())
    else:
        _print_evaluation(result)


def _print_evaluation(result: EvaluationResult) -> None:
    m = result.metrics

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    console.print(f"{result.model} on {result.data}: {m.frames} frames, threshold {m.threshold}")
    console.print(
        f"mAP {fmt(m.map)}  AP50 {fmt(m.map50)}  precision {fmt(m.precision)}  recall {fmt(m.recall)}  "
        f"FP/1k empty frames {fmt(m.fp_per_1k_frames)}  FP/1k frames {fmt(m.fp_per_1k_all_frames)}  "
        f"falls {m.falls_found}/{m.falls}",
        highlight=False,
    )
    table = Table("class", "truth", "detections", "hits", "AP", "AP50", "precision", "recall")
    for c in m.per_class.values():
        table.add_row(
            c.cls,
            str(c.ground_truth),
            str(c.detections),
            str(c.true_positives),
            fmt(c.ap),
            fmt(c.ap50),
            fmt(c.precision),
            fmt(c.recall),
        )
    console.print(table)


@handle_errors
def gate(
    candidate: str = typer.Argument(..., help="The new model, e.g. detector:candidate."),
    against: str = typer.Option(..., "--against", help="The model in production, e.g. detector:production."),
    criteria_file: Path = typer.Option(..., "--criteria", help="The criteria file (YAML)."),
    out: Path = typer.Option(Path("."), "--out", help="Directory for gate-report.md and gate-report.json."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Images per forward pass."),
    as_json: bool = JsonOption,
) -> None:
    """Compare a candidate with production on old data, the diff and corner cases. Exit 0 pass, 1 fail."""
    criteria = load_criteria(criteria_file)
    with file_progress(not as_json) as progress:
        report = gate_models(
            database(), store(), candidate, against, criteria, batch_size=batch_size, progress=progress
        )
    markdown_path, json_path = report.write(out)
    if as_json:
        print_json(report.to_json())
    else:
        # Soft wrap: the Markdown must survive a pipe intact, whatever the terminal width.
        console.print(report.to_markdown(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"written: {markdown_path}, {json_path}", highlight=False)
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("gate", epilog=GATE_EPILOG)(gate)
