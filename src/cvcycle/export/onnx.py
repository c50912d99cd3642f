"""ONNX export of a PyTorch module and its verification against PyTorch on real inputs.

``export_onnx`` turns a module into checked ONNX bytes with a dynamic batch axis. ``verify_onnx``
runs the module and ONNX Runtime (CPU) on the same batches and reports, per output, the largest
absolute and relative errors, the 99th percentile of the absolute error, how many elements fall
outside ``atol + rtol * |torch|`` (numpy's ``allclose`` rule), and any shape or dtype mismatch.

Detector outputs need one more step. After top-k, two detections whose scores differ by less than
the numeric noise between runtimes may come out in either order, and a heatmap peak tied with its
neighbour may be kept by one runtime and suppressed by the other, shifting every row below it. An
element-wise comparison would call both failures although the runtimes agree. So when the outputs
follow the detector contract (``boxes`` (B, K, 4), ``scores`` (B, K), ``classes`` (B, K)), rows are
compared as detections, per image:

1. each PyTorch row, best score first, is paired with an unused ONNX row of the same class whose
   score and box are within twice the tolerance: the detections both runtimes agree on;
2. each PyTorch row still alone is paired with the unused ONNX row of the same class whose score
   is within twice the tolerance and whose box is nearest; the rows left after that are paired
   in score order;
3. a pair from step 2 is left out (and counted in ``ambiguous_rows``) when both its rows are
   *ambiguous*: tied, within twice the tolerance, with a row of step 1 in their own output (a
   near-duplicate of a detection both runtimes found), or with the lowest score of a top-k that
   has no padding (at the cut-off, where a candidate just below may have taken the place);
4. every other pair is compared element-wise like any other output.

So a real difference (a wrong score, box or class, or a detection only one side has that is not a
near-tie) still fails, and the report says how many rows were reordered or left out.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from cvcycle.errors import InvalidInput

DETECTOR_OUTPUTS = ("boxes", "scores", "classes")

# ONNX Runtime's pybind exceptions share no base class but Exception.
_ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.RuntimeException,
    ort_state.NotImplemented,
    RuntimeError,
    ValueError,
)

InputBatch = Sequence[torch.Tensor | np.ndarray]


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int = 17,
    *,
    dynamo: bool = False,
) -> bytes:
    """The module in eval mode as ONNX bytes, checked by ``onnx.checker``.

    The TorchScript exporter is the default: on the built-in detector it is an order of magnitude
    faster than the ``torch.export`` one (a tenth of a second against seconds) and supports
    opset 17; ``dynamo=True`` selects the ``torch.export`` exporter (opset 18 at least).
    """
    if not example_inputs:
        raise InvalidInput("export needs at least one example input")
    module.eval()
    try:
        exporter = _export_dynamo if dynamo else _export_torchscript
        data = exporter(module, example_inputs, input_names, output_names, dynamic_axes, opset)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"torch.onnx.export failed for {type(module).__name__}: {exc}",
            hint="the module's forward must be traceable: tensors in, a tuple of tensors out",
        ) from exc
    model = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InvalidInput(f"the exported ONNX graph is invalid: {exc}") from exc
    return data


def _export_torchscript(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int,
) -> bytes:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        path = Path(tmp) / "model.onnx"
        # Chosen on purpose (see export_onnx); its deprecation notice says nothing about this graph.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        return path.read_bytes()


def _export_dynamo(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int,
) -> bytes:
    # torch.export takes dynamic dimensions per input; the outputs' follow from the graph.
    dynamic_shapes = tuple(
        {axis: torch.export.Dim(label, min=1) for axis, label in dynamic_axes.get(name, {}).items()}
        for name in input_names
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=max(opset, 18),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        return path.read_bytes()


@dataclass
class OutputError:
    """How far one ONNX output is from PyTorch's over every verified batch."""

    name: str
    torch_shape: list[int] | None = None  # of the first batch
    onnx_shape: list[int] | None = None
    torch_dtype: str | None = None
    onnx_dtype: str | None = None
    elements: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0  # over elements whose PyTorch value exceeds atol in magnitude
    p99_abs: float = 0.0
    mismatched: int = 0  # elements outside atol + rtol * |torch|
    problem: str | None = None  # shape, dtype or count mismatch: no numbers then
    passed: bool = False


@dataclass
class VerificationReport:
    """The verdict on an ONNX graph: per output errors, and whether every one is within tolerance."""

    passed: bool
    rtol: float
    atol: float
    batches: int
    samples: int
    alignment: str  # "detections" (rows aligned by score, see the module docstring) or "elementwise"
    reordered_rows: int = 0  # detections found at another row than in PyTorch's output
    ambiguous_rows: int = 0  # near-tied rows that one runtime kept and the other did not (not compared)
    score_floor: float = 0.0  # detections scoring below this in both runtimes are not compared
    low_score_rows: int = 0  # rows left out by the floor
    outputs: list[OutputError] = field(default_factory=list)
    onnxruntime: str = ort.__version__
    torch: str = torch.__version__

    def failures(self) -> list[str]:
        """One line per failed output, naming it and why."""
        if self.batches == 0:
            return ["no batches were verified"]
        lines = []
        for out in self.outputs:
            if out.passed:
                continue
            if out.problem:
                lines.append(f"{out.name}: {out.problem}")
            else:
                lines.append(
                    f"{out.name}: {out.mismatched} of {out.elements} elements outside "
                    f"rtol={self.rtol:g} atol={self.atol:g} (max abs {out.max_abs:.3g}, "
                    f"max rel {out.max_rel:.3g}, p99 abs {out.p99_abs:.3g})"
                )
        return lines


# Detections below 5% confidence are never acted on (operating thresholds sit far above).
DEFAULT_SCORE_FLOOR = 0.05


def verify_onnx(
    module: torch.nn.Module,
    onnx_bytes: bytes,
    batches: Sequence[InputBatch],
    rtol: float = 1e-3,
    atol: float = 1e-5,
    score_floor: float = DEFAULT_SCORE_FLOOR,
) -> VerificationReport:
    """Run ``module`` and ONNX Runtime (CPUExecutionProvider) on each batch and compare the outputs.

    Each batch is a tuple of inputs in the graph's input order (tensors or arrays). Outputs are
    paired by position, as ``torch.onnx.export`` flattens them. Detector rows scoring below
    ``score_floor`` in both runtimes are not compared: peak finding keeps a heatmap maximum by an
    equality test, which a 1e-7 difference can flip for a barely-there peak, and such rows are far
    below any operating threshold.
    """
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    detector = all(name in output_names for name in DETECTOR_OUTPUTS)
    errors: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    rels: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    results = {name: OutputError(name) for name in output_names}
    reordered = ambiguous = samples = low_score = 0

    module.eval()
    for batch in batches:
        if len(batch) != len(input_names):
            raise InvalidInput(
                f"a verification batch has {len(batch)} inputs; the graph takes {len(input_names)} "
                f"({', '.join(input_names)})"
            )
        tensors = tuple(torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x for x in batch)
        with torch.inference_mode():
            torch_out = _as_tuple(module(*tensors), output_names)
        try:
            onnx_out = session.run(
                None, {n: t.detach().cpu().numpy() for n, t in zip(input_names, tensors, strict=True)}
            )
        except _ORT_ERRORS as exc:
            for out in results.values():
                out.problem = out.problem or f"ONNX Runtime failed on a batch: {str(exc).strip()}"
            continue
        samples += int(tensors[0].shape[0]) if tensors[0].dim() else 1
        ref = {name: t.detach().cpu().numpy() for name, t in zip(output_names, torch_out, strict=False)}
        got = dict(zip(output_names, onnx_out, strict=False))
        if len(torch_out) != len(onnx_out):
            for out in results.values():
                out.problem = f"PyTorch returned {len(torch_out)} outputs, ONNX {len(onnx_out)}"
            continue
        compare_mask: dict[str, np.ndarray] = {}
        if detector and _detector_shapes(ref, got):
            t_index, o_index, keep, moved = _pair_detections(ref, got, rtol, atol)
            reordered += moved
            ambiguous += int(np.count_nonzero(~keep))
            for name in DETECTOR_OUTPUTS:
                extra = (1,) * (ref[name].ndim - 2)
                ref[name] = np.take_along_axis(ref[name], t_index.reshape(t_index.shape + extra), 1)
                got[name] = np.take_along_axis(got[name], o_index.reshape(o_index.shape + extra), 1)
            above = (ref["scores"] >= score_floor) | (got["scores"] >= score_floor)
            low_score += int(np.count_nonzero(keep & ~above))
            keep = keep & above
            compare_mask = {"boxes": np.repeat(keep[..., None], 4, axis=2), "scores": keep, "classes": keep}
        for name in output_names:
            _accumulate(results[name], ref[name], got[name], compare_mask.get(name), rtol, atol,
                        errors[name], rels[name])  # fmt: skip

    for name, out in results.items():
        if out.problem is None and errors[name]:
            abs_err = np.concatenate(errors[name])
            rel_err = np.concatenate(rels[name])
            out.elements = int(abs_err.size)
            out.max_abs = float(abs_err.max()) if abs_err.size else 0.0
            out.max_rel = float(rel_err.max()) if rel_err.size else 0.0
            out.p99_abs = float(np.percentile(abs_err, 99)) if abs_err.size else 0.0
            out.passed = out.mismatched == 0
    outputs = list(results.values())
    return VerificationReport(
        passed=bool(batches) and all(o.passed for o in outputs),
        rtol=rtol,
        atol=atol,
        batches=len(batches),
        samples=samples,
        alignment="detections" if detector else "elementwise",
        reordered_rows=reordered,
        ambiguous_rows=ambiguous,
        score_floor=score_floor if detector else 0.0,
        low_score_rows=low_score,
        outputs=outputs,
    )


def _as_tuple(result: Any, output_names: Sequence[str]) -> tuple[torch.Tensor, ...]:
    if isinstance(result, torch.Tensor):
        return (result,)
    if isinstance(result, Mapping):
        return tuple(result[name] for name in output_names)
    return tuple(result)


def _detector_shapes(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> bool:
    for side in (ref, got):
        boxes, scores, classes = (side[n] for n in DETECTOR_OUTPUTS)
        if boxes.ndim != 3 or boxes.shape[2] != 4:
            return False
        if scores.shape != boxes.shape[:2] or classes.shape != boxes.shape[:2]:
            return False
    return all(ref[n].shape == got[n].shape for n in DETECTOR_OUTPUTS)


def _pair_detections(
    ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], rtol: float, atol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pair PyTorch and ONNX detections per image, as the module docstring describes.

    Returns (PyTorch row order (B, K), the ONNX row paired with each (B, K), which pairs are
    compared (B, K), how many detections sit at another row in the ONNX output).
    """
    t_scores, o_scores = ref["scores"].astype(np.float64), got["scores"].astype(np.float64)
    t_boxes, o_boxes = ref["boxes"].astype(np.float64), got["boxes"].astype(np.float64)
    t_cls, o_cls = ref["classes"], got["classes"]
    batch, k = t_scores.shape
    t_index = np.zeros((batch, k), np.int64)
    o_index = np.zeros((batch, k), np.int64)
    keep = np.ones((batch, k), bool)
    moved = 0
    for b in range(batch):
        ts, os_ = t_scores[b], o_scores[b]
        used = np.zeros(k, bool)
        exact: list[tuple[int, int]] = []
        near: list[tuple[int, int]] = []
        order = [int(i) for i in np.argsort(-ts, kind="stable")]
        # First the rows both runtimes agree on within tolerance, so that no row takes another's
        # partner; then the rest, by score and nearest box.
        for pairs in (exact, near):
            taken = {i for i, _ in exact}
            for i in order:
                if i in taken:
                    continue
                tie = 2 * (atol + rtol * abs(ts[i]))
                fits = ~used & (o_cls[b] == t_cls[b][i]) & (np.abs(os_ - ts[i]) <= tie)
                distance = np.abs(o_boxes[b] - t_boxes[b][i]).max(axis=1)
                if pairs is exact:
                    fits &= distance <= 2 * (atol + rtol * np.abs(t_boxes[b][i]).max())
                candidates = np.flatnonzero(fits)
                if candidates.size:
                    j = int(candidates[np.argmin(distance[candidates])])
                    used[j] = True
                    taken.add(i)
                    pairs.append((i, j))
        paired = {i for i, _ in exact} | {i for i, _ in near}
        t_left = [i for i in order if i not in paired]
        o_left = [int(j) for j in np.argsort(-os_, kind="stable") if not used[j]]
        moved += sum(i != j for i, j in exact)
        agreed_t = np.array([ts[i] for i, _ in exact])
        agreed_o = np.array([os_[j] for _, j in exact])
        rows = [(i, j, True) for i, j in exact]
        for i, j in [*near, *zip(t_left, o_left, strict=True)]:
            ambiguous = _ambiguous(ts[i], agreed_t, ts, rtol, atol) and _ambiguous(
                os_[j], agreed_o, os_, rtol, atol
            )
            rows.append((i, j, not ambiguous))
        for row, (i, j, compared) in enumerate(rows):
            t_index[b, row], o_index[b, row], keep[b, row] = i, j, compared
    return t_index, o_index, keep, moved


def _ambiguous(score: float, paired: np.ndarray, scores: np.ndarray, rtol: float, atol: float) -> bool:
    """A row tied with a paired row of its output, or with the cut-off of a top-k without padding."""
    tie = 2 * (atol + rtol * abs(score))
    if paired.size and np.min(np.abs(paired - score)) <= tie:
        return True
    lowest = float(scores.min())
    return lowest > 0 and score - lowest <= tie


def _accumulate(
    result: OutputError,
    ref: np.ndarray,
    got: np.ndarray,
    mask: np.ndarray | None,
    rtol: float,
    atol: float,
    errors: list[np.ndarray],
    rels: list[np.ndarray],
) -> None:
    if result.torch_shape is None:
        result.torch_shape, result.onnx_shape = list(ref.shape), list(got.shape)
        result.torch_dtype, result.onnx_dtype = str(ref.dtype), str(got.dtype)
    if result.problem is not None:
        return
    if ref.shape != got.shape:
        result.problem = f"shape mismatch: PyTorch {list(ref.shape)}, ONNX {list(got.shape)}"
        return
    if ref.dtype != got.dtype:
        result.problem = f"dtype mismatch: PyTorch {ref.dtype}, ONNX {got.dtype}"
        return
    r, g = ref.astype(np.float64), got.astype(np.float64)
    if mask is not None:
        r, g = r[mask], g[mask]
    r, g = r.reshape(-1), g.reshape(-1)
    both_nan = np.isnan(r) & np.isnan(g)
    abs_err = np.where(both_nan, 0.0, np.abs(r - g))
    abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)
    result.mismatched += int(np.count_nonzero(abs_err > atol + rtol * np.abs(np.nan_to_num(r))))
    significant = np.abs(r) > atol
    errors.append(abs_err)
    rels.append(abs_err[significant] / np.abs(r[significant]))
