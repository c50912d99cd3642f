"""The adapter registry drives these tests: every registered adapter is built, trained for a few steps
on synthetic frames, asked to predict, exported to ONNX and checked against ONNX Runtime."""

from __future__ import annotations

import hashlib
import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cvcycle.errors import InvalidInput
from cvcycle.models import adapter as adapter_module
from cvcycle.models.adapter import (
    LabelledFrame,
    ModelAdapter,
    TrainingData,
    TrainProgress,
    create_adapter,
    list_adapters,
    reload_adapters,
)
from cvcycle.models.centernet import MIN_SCORE
from cvcycle.models.detections import Detections
from cvcycle.models.predictor import prepare_batch
from cvcycle.synth import generate_clips, render_frames
from cvcycle.train.config import TrainConfig

TINY = TrainConfig(
    epochs=3,
    max_seconds=None,
    batch_size=4,
    lr=0.01,
    input_size=(64, 96),
    width=4,
    max_detections=20,
    num_workers=0,
)


@pytest.fixture(scope="module")
def synthetic() -> tuple[TrainingData, list[np.ndarray]]:
    """Two short clips of the synthetic world: one to train on, one to validate on."""
    specs = generate_clips(2, "day", seed=3, width=160, height=120, seconds=2.0)
    classes = ("fallen_person", "person")
    frames: list[LabelledFrame] = []
    pixels: dict[int, np.ndarray] = {}
    for spec in specs:
        for t, image in enumerate(render_frames(spec)):
            boxes = [b for b in spec.boxes if b.frame_index == t]
            frame_id = len(frames)
            pixels[frame_id] = image
            frames.append(
                LabelledFrame(
                    frame_id=frame_id,
                    blob_key="",
                    blob_size=0,
                    width=spec.width,
                    height=spec.height,
                    boxes=np.array([(b.x, b.y, b.x + b.w, b.y + b.h) for b in boxes], np.float32).reshape(
                        -1, 4
                    ),
                    class_ids=np.array([classes.index(b.cls) for b in boxes], np.int64),
                )
            )
    half = len(frames) // 2
    data = TrainingData(classes, frames[:half], frames[half:], lambda f: pixels[f.frame_id])
    return data, [pixels[f.frame_id] for f in frames[half : half + 3]]


@pytest.mark.parametrize("name", list_adapters())
def test_every_adapter_trains_predicts_and_exports_with_onnx_parity(
    name: str, synthetic: tuple[TrainingData, list[np.ndarray]]
) -> None:
    data, images = synthetic
    adapter = create_adapter(name)
    assert isinstance(adapter, ModelAdapter)
    # The network new runs get: the adapter's default options, as the training service records them.
    config = TINY.model_copy(update={"options": dict(getattr(adapter, "default_options", {}))})
    module = adapter.build(config, data.classes)
    events: list[TrainProgress] = []
    outcome = adapter.train(module, data, config, events.append)

    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2, 3]
    assert any(e.kind == "step" for e in events)
    assert len(outcome.history) == 3 and outcome.best_epoch in (1, 2, 3)
    assert all(np.isfinite(h["train_loss"]) for h in outcome.history)
    assert set(outcome.state_dict) == set(module.state_dict())

    found = adapter.predict(module, images, TINY, 0.0)
    assert len(found) == len(images)
    assert all(isinstance(d, Detections) and d.class_names == data.classes for d in found)
    for d, image in zip(found, images, strict=True):
        assert len(d) <= TINY.max_detections
        # Boxes come back in the image's own pixels, not the network's input size.
        assert (d.xyxy[:, [0, 2]] <= image.shape[1] + 1e-3).all() and (
            d.xyxy[:, [1, 3]] <= image.shape[0] + 1e-3
        ).all()

    module.eval()
    spec = adapter.export_inputs(module, TINY)
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        spec.args,
        buffer,
        input_names=spec.input_names,
        output_names=spec.output_names,
        dynamic_axes=spec.dynamic_axes,
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    # Three real frames: a batch size other than the example's proves the batch axis is dynamic.
    batch, _ = prepare_batch(images, TINY.input_size)
    onnx_out = session.run(spec.output_names, {spec.input_names[0]: batch})
    with torch.inference_mode():
        torch_out = [t.numpy() for t in module(torch.from_numpy(batch))]
    assert [o.shape[0] for o in onnx_out] == [3, 3, 3]
    for out_name, got, want in zip(spec.output_names, onnx_out, torch_out, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape, out_name
    assert (torch_out[1] > 0).any(), "a few steps of training must give some detections to compare"
    assert_same_detections(dict(zip(spec.output_names, onnx_out, strict=True)), torch_out)


def _at_floor(score: float) -> bool:
    return bool(score <= MIN_SCORE * (1 + 1e-3) + 1e-5)


def assert_same_detections(got: dict[str, np.ndarray], want: list[np.ndarray]) -> None:
    """Every row agrees within rtol 1e-3 / atol 1e-5; rows whose scores tie within that tolerance
    may come in either order (top-k of two runtimes breaks near-ties differently)."""
    boxes, scores, classes = want
    for b in range(len(scores)):
        free = list(range(len(scores[b])))
        for i in range(len(scores[b])):
            match = next(
                (
                    j
                    for j in free
                    if got["classes"][b, i] == classes[b, j]
                    and np.allclose(got["scores"][b, i], scores[b, j], rtol=1e-3, atol=1e-5)
                    and np.allclose(got["boxes"][b, i], boxes[b, j], rtol=1e-3, atol=1e-5)
                ),
                None,
            )
            if match is None and _at_floor(got["scores"][b, i]):
                # A score at the MIN_SCORE floor: one runtime may keep the row and the other drop it
                # to padding. Pair it with a row the other runtime has at the floor or dropped.
                match = next((j for j in free if _at_floor(scores[b, j])), None)
                if match is not None:
                    free.remove(match)
                    continue
            assert match is not None, (
                f"image {b}, ONNX row {i} (class {got['classes'][b, i]}, score {got['scores'][b, i]:.6f}, "
                f"box {got['boxes'][b, i]}) has no PyTorch counterpart"
            )
            # Outside a near-tie, the order is the same too.
            assert abs(match - i) <= 1 or np.isclose(scores[b, match], scores[b, i], rtol=1e-3, atol=1e-5)
            free.remove(match)


def test_the_detector_contract_shapes_and_types() -> None:
    module = create_adapter("detector").build(TINY, ("a", "b"))
    module.eval()
    with torch.inference_mode():
        boxes, scores, classes = module(torch.rand(2, 3, *TINY.input_size))
    assert boxes.shape == (2, TINY.max_detections, 4) and boxes.dtype == torch.float32
    assert scores.shape == (2, TINY.max_detections) and classes.dtype == torch.int64
    assert bool((scores[:, :-1] >= scores[:, 1:]).all()), "rows are sorted by score"
    padding = scores == 0
    assert bool((boxes[padding] == 0).all()) and bool((classes[padding] == 0).all())


def test_an_unknown_adapter_is_named_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        create_adapter("yolo9000")
    assert "yolo9000" in caught.value.message
    assert caught.value.hint is not None and "detector" in caught.value.hint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_size": (60, 96)}, "multiple of 32"),
        ({"options": {"depth": 3}}, "no option 'depth'"),
        ({"options": {"train_crop": 0}}, "train_crop must be a number in"),
        ({"options": {"train_crop": "half"}}, "not 'half'"),
        ({"options": {"stride": 16}}, "options.stride must be one of 4, 8, not 16"),
        ({"options": {"stride": True}}, "options.stride must be one of 4, 8, not True"),
        ({"options": {"head": "tiny"}}, "options.head must be one of separate, shared, not 'tiny'"),
        ({"device": "cuda:7"}, "cuda:7"),
    ],
)
def test_the_detector_rejects_what_it_cannot_build_or_run(change: dict[str, object], message: str) -> None:
    adapter = create_adapter("detector")
    config = TrainConfig.model_validate({**TINY.model_dump(), **change})
    with pytest.raises(InvalidInput, match=message):
        if "device" in change:
            data = TrainingData(("a",), [], [], lambda f: np.zeros((1, 1, 3), np.uint8))
            frame = LabelledFrame(0, "", 0, 8, 8, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
            data = TrainingData(("a",), [frame], [], data.read_image)
            adapter.train(adapter.build(config, ("a",)), data, config, None)
        else:
            adapter.build(config, ("a",))


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution on sys.path declaring adapters through the ``cvcycle.adapters`` entry points."""
    package = tmp_path / "tiny_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from cvcycle.models.detector import DetectorAdapter

            class TinyAdapter(DetectorAdapter):
                name = "tiny"
            """
        )
    )
    info = tmp_path / "tiny_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[cvcycle.adapters]\ntiny = tiny_plugin:TinyAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(adapter_module._REGISTRY)
    yield info
    adapter_module._REGISTRY.clear()
    adapter_module._REGISTRY.update(before)
    monkeypatch.undo()
    reload_adapters()


def test_entry_points_register_adapters_from_other_distributions(plugin_dir: Path) -> None:
    reload_adapters()
    assert {"detector", "tiny"} <= set(list_adapters())
    assert create_adapter("tiny").name == "tiny"


def test_a_broken_entry_point_is_reported_by_name(plugin_dir: Path) -> None:
    (plugin_dir / "entry_points.txt").write_text("[cvcycle.adapters]\nbroken = no_such_module:Adapter\n")
    with pytest.raises(InvalidInput, match="'broken'"):
        reload_adapters()


@pytest.mark.parametrize(
    ("epochs", "validate_from", "validated"), [(4, 0.5, [2, 3, 4]), (2, 0.0, [1, 2]), (3, 1.0, [3])]
)
def test_the_detector_validates_the_epochs_past_validate_from_and_the_last(
    synthetic: tuple[TrainingData, list[np.ndarray]], epochs: int, validate_from: float, validated: list[int]
) -> None:
    data, _ = synthetic
    config = TINY.model_copy(update={"epochs": epochs, "validate_from": validate_from})
    adapter = create_adapter("detector")
    outcome = adapter.train(adapter.build(config, data.classes), data, config, None)
    assert [int(h["epoch"]) for h in outcome.history] == list(range(1, epochs + 1))
    assert [int(h["epoch"]) for h in outcome.history if "val_map50" in h] == validated
    assert outcome.best_epoch in validated  # an epoch never validated is never kept


def test_a_config_without_a_stride_builds_the_network_of_older_versions() -> None:
    """Versions trained before ``options.stride`` existed record no stride; their checkpoints must load.

    The signature is of the network those versions have (stride 4, for TINY's sizes): every tensor's
    name and shape, in order.
    """
    module = create_adapter("detector").build(TINY, ("a", "b"))
    signature = ";".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    assert hashlib.sha256(signature.encode()).hexdigest()[:16] == "b1c9df404f34dca5"
    for options in ({"stride": 8}, {"head": "shared"}, {"stride": 8, "head": "shared"}):
        other = create_adapter("detector").build(TINY.model_copy(update={"options": options}), ("a", "b"))
        assert len(other.state_dict()) < len(module.state_dict()), options
        with torch.inference_mode():
            heat, boxes = other.eval().maps(torch.rand(1, 3, *TINY.input_size))
        stride = int(options.get("stride", 4))
        height, width = TINY.input_size
        assert heat.shape[2:] == boxes.shape[2:] == (height // stride, width // stride)
