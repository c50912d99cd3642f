"""The built-in ``detector`` adapter: the CenterNet of :mod:`cvcycle.models.centernet`, trained here.

Training is AdamW with a short warm-up and a cosine schedule driven by progress, where progress is
the larger of steps done / planned steps and seconds spent / ``max_seconds``: a run stopped by its
time budget still ends at a low learning rate. Batches are augmented (:mod:`cvcycle.models.augment`),
an exponential moving average of the weights is validated after each epoch in the later part of
the run (``validate_from``) and after the last, and the average of the validated epoch with the best
validation mAP@0.5 is kept (ties go to the later epoch). Frames are decoded
once and kept in memory when they fit ``_CACHE_BYTES``; larger sets stream through a ``DataLoader``
with ``num_workers`` workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cvcycle.errors import InvalidInput
from cvcycle.models.adapter import (
    AdapterConfig,
    ExportInputs,
    LabelledFrame,
    ProgressFn,
    TrainingData,
    TrainOutcome,
    TrainProgress,
    register_adapter,
    resolve_device,
)
from cvcycle.models.augment import Batch, augment
from cvcycle.models.centernet import HEADS, STRIDES, CenterNet, decode, detection_loss, draw_targets
from cvcycle.models.coco_eval import GroundTruth, coco_map
from cvcycle.models.detections import Detections
from cvcycle.models.predictor import prepare_batch, to_detections

_CACHE_BYTES = 2 * 1024**3
_WARMUP_STEPS = 30
_MIN_LR_FACTOR = 0.02
_EMA_DECAY = 0.99
_CLIP_GRAD_NORM = 10.0
# Adapter-specific options (config.options); anything else there is a typo.
_OPTIONS: frozenset[str] = frozenset({"train_crop", "stride", "head"})
# The network of a version whose config does not name these options: every version trained before
# they existed has it. New runs record ``DetectorAdapter.default_options``.
_LEGACY_NETWORK: dict[str, Any] = {"stride": 4, "head": "separate"}
# With augmentation on, training steps see a random window of this share of each side (rounded
# down to a multiple of 32): 128x160 of a 160x224 input, 57% of the pixels, at the inference
# scale. On 2 CPU cores the cheaper steps buy more of them in a time budget, and more steps found
# better boxes than whole images did (bench/detector.py).
_TRAIN_CROP = 0.8


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidInput(
            f"the detector adapter has no option {', '.join(map(repr, unknown))}",
            hint="its options: train_crop (share of each side a training step sees, 0 < x <= 1), "
            "stride (output stride, 8 or 4), head (shared or separate)",
        )
    crop = options.get("train_crop", _TRAIN_CROP)
    if isinstance(crop, bool) or not isinstance(crop, int | float) or not 0 < crop <= 1:
        raise InvalidInput(
            f"options.train_crop must be a number in (0, 1], not {crop!r}",
            hint="1 trains on whole images; 0.8 on windows of 80% of each side",
        )
    stride = options.get("stride", _LEGACY_NETWORK["stride"])
    if isinstance(stride, bool) or stride not in STRIDES:
        raise InvalidInput(
            f"options.stride must be one of {', '.join(map(str, STRIDES))}, not {stride!r}",
            hint="8: a coarser heatmap, cheaper steps; 4: finer, for small objects",
        )
    head = options.get("head", _LEGACY_NETWORK["head"])
    if head not in HEADS:
        raise InvalidInput(
            f"options.head must be one of {', '.join(HEADS)}, not {head!r}",
            hint="shared: one convolution feeds the heatmap and the boxes; separate: one each",
        )


def train_crop_size(config: AdapterConfig) -> tuple[int, int]:
    """The training window (height, width): ``train_crop`` of each side, a multiple of 32, at least 32."""
    share = float(config.options.get("train_crop", _TRAIN_CROP))
    height, width = config.input_size
    return max(32, int(height * share) // 32 * 32), max(32, int(width * share) // 32 * 32)


def _as_centernet(module: torch.nn.Module) -> CenterNet:
    if not isinstance(module, CenterNet):
        raise InvalidInput(f"the detector adapter works with its own CenterNet, not {type(module).__name__}")
    return module


class _Frames(Dataset[tuple[torch.Tensor, np.ndarray, np.ndarray]]):
    """Frames resized to the input size as uint8 (3,H,W), with boxes scaled to input pixels."""

    def __init__(self, frames: Sequence[LabelledFrame], data: TrainingData, size: tuple[int, int]):
        self.frames = frames
        self.read_image = data.read_image
        self.size = size

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        frame = self.frames[i]
        height, width = self.size
        image = self.read_image(frame)
        h, w = image.shape[:2]
        if (h, w) != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
        boxes = frame.boxes.astype(np.float32) * np.array([width / w, height / h] * 2, np.float32)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), boxes, frame.class_ids


RawBatch = tuple[torch.Tensor, list[np.ndarray], list[np.ndarray]]


def _collate(items: list[tuple[torch.Tensor, np.ndarray, np.ndarray]]) -> RawBatch:
    return torch.stack([i[0] for i in items]), [i[1] for i in items], [i[2] for i in items]


class _Batches:
    """Batches of a frame set: from memory when it fits, else streamed through a DataLoader."""

    def __init__(self, dataset: _Frames, batch_size: int, num_workers: int, generator: torch.Generator):
        self.dataset = dataset
        self.batch_size = batch_size
        self.generator = generator
        height, width = dataset.size
        self.cached: RawBatch | None = None
        self.loader: DataLoader[tuple[torch.Tensor, np.ndarray, np.ndarray]] | None = None
        if len(dataset) * 3 * height * width <= _CACHE_BYTES:
            with ThreadPoolExecutor(max(1, num_workers)) as pool:
                self.cached = _collate(list(pool.map(dataset.__getitem__, range(len(dataset)))))
        else:
            self.loader = DataLoader(
                dataset,
                batch_size=batch_size,
                shuffle=True,
                num_workers=num_workers,
                collate_fn=_collate,
                generator=generator,
                persistent_workers=num_workers > 0,
            )

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def epoch(self, shuffle: bool) -> Iterator[Batch]:
        if self.loader is not None:
            for images, boxes, classes in self.loader:
                yield Batch(images.float().div_(255.0), boxes, classes)
            return
        assert self.cached is not None
        images, boxes, classes = self.cached
        order = (
            torch.randperm(len(images), generator=self.generator) if shuffle else torch.arange(len(images))
        )
        for start in range(0, len(order), self.batch_size):
            pick = order[start : start + self.batch_size].tolist()
            yield Batch(
                images[pick].float().div_(255.0), [boxes[i] for i in pick], [classes[i] for i in pick]
            )


class _WeightAverage:
    """An exponential moving average of the weights and BatchNorm statistics (as YOLO keeps).

    It smooths out the step-to-step noise of a short, small-batch run; the averaged weights are the
    ones validated and kept.
    """

    def __init__(self, module: torch.nn.Module, decay: float = _EMA_DECAY):
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self._floats = [k for k, v in self.state.items() if v.dtype.is_floating_point]
        self._float_state = [self.state[k] for k in self._floats]

    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        # Ramp the decay up so the first steps' random weights are forgotten quickly.
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            current = module.state_dict()
            # One multi-tensor call instead of ~100 small ones.
            torch._foreach_lerp_(self._float_state, [current[k].detach() for k in self._floats], 1 - d)
            for key, value in current.items():
                if not value.dtype.is_floating_point:
                    self.state[key].copy_(value)

    @contextmanager
    def swapped_in(self, module: torch.nn.Module) -> Iterator[None]:
        """Load the averaged weights into ``module`` for the block, then restore the trained ones."""
        trained = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.state)
        try:
            yield
        finally:
            module.load_state_dict(trained)


def _progress(config: AdapterConfig, step: int, planned_steps: int, elapsed: float) -> float:
    """How far along the run is: steps done or seconds spent, whichever is further, in [0, 1]."""
    progress = step / max(planned_steps, 1)
    if config.max_seconds:
        progress = max(progress, elapsed / config.max_seconds)
    return min(progress, 1.0)


def _learning_rate(config: AdapterConfig, step: int, planned_steps: int, elapsed: float) -> float:
    progress = _progress(config, step, planned_steps, elapsed)
    # A short run warms up for a tenth of its steps at most.
    warmup = min(1.0, (step + 1) / min(_WARMUP_STEPS, planned_steps // 10 + 1))
    cosine = _MIN_LR_FACTOR + (1 - _MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * warmup * cosine


def _loss(module: CenterNet, batch: Batch, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
    height, width = batch.images.shape[2:]
    targets = draw_targets(batch.boxes, batch.classes, len(module.classes), (height, width), module.stride)
    images = batch.images.to(device, memory_format=torch.channels_last)
    return detection_loss(module.maps(images), {k: v.to(device) for k, v in targets.items()}, module.stride)


def _validate(
    module: CenterNet, val_set: _Batches, input_size: tuple[int, int], device: torch.device
) -> dict[str, float]:
    """Validation loss and mAP (in input pixels: IoU does not change with the scale)."""
    module.eval()
    sums: dict[str, float] = {}
    batches = 0
    truth: list[GroundTruth] = []
    found: list[Detections] = []
    height, width = input_size
    with torch.inference_mode():
        for batch in val_set.epoch(shuffle=False):
            stride = module.stride
            targets = draw_targets(batch.boxes, batch.classes, len(module.classes), input_size, stride)
            maps = module.maps(batch.images.to(device, memory_format=torch.channels_last))
            loss, terms = detection_loss(maps, {k: v.to(device) for k, v in targets.items()}, stride)
            for key, value in {"loss": float(loss), **terms}.items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
            decoded = decode(*maps, module.top_k, input_size, stride)
            boxes, scores, classes = (t.cpu().numpy() for t in decoded)
            for i in range(len(boxes)):
                keep = scores[i] > 0
                found.append(Detections(boxes[i][keep], scores[i][keep], classes[i][keep]))
                truth.append(GroundTruth(width, height, batch.boxes[i], batch.classes[i]))
    metrics = {f"val_{key}": value / max(batches, 1) for key, value in sums.items()}
    quality = coco_map(truth, found, module.classes)
    metrics.update(val_map50=quality["map50"], val_map=quality["map"])
    return metrics


class _Training:
    """One training run of the detector: the loop, the schedule, validation and the best epoch."""

    def __init__(
        self, net: CenterNet, data: TrainingData, config: AdapterConfig, progress: ProgressFn | None
    ):
        self.net = net
        self.config = config
        self.progress = progress
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        # channels_last runs convolutions ~1.3x faster on CPUs (oneDNN) and on tensor cores alike.
        net.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # untyped kwarg
        batch_size = min(config.batch_size, len(data.train))
        workers, size = config.num_workers, config.input_size
        self.train_set = _Batches(_Frames(data.train, data, size), batch_size, workers, self.generator)
        self.val_set = (
            _Batches(_Frames(data.val, data, size), batch_size, workers, self.generator) if data.val else None
        )
        # The fused step is one kernel over every parameter, not a loop of small per-tensor ops.
        self.optimiser = torch.optim.AdamW(
            net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        self.average = _WeightAverage(net)
        self.crop = train_crop_size(config)
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        self.step = 0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self) -> bool:
        return self.config.max_seconds is not None and self.elapsed() >= self.config.max_seconds

    def run(self) -> TrainOutcome:
        self.start = time.perf_counter()
        for epoch in range(1, self.config.epochs + 1):
            metrics = self.train_epoch(epoch)
            last = epoch == self.config.epochs or self.out_of_time()
            self.end_epoch(epoch, metrics, last)
            if last:
                break
        assert self.best is not None
        _, best_epoch, state = self.best
        self.net.load_state_dict(state)
        self.net.eval()
        summary = {k: v for k, v in self.history[best_epoch - 1].items() if k != "epoch"}
        summary.update(
            best_epoch=float(best_epoch),
            epochs=float(len(self.history)),
            steps=float(self.step),
            seconds=round(self.elapsed(), 3),
        )
        return TrainOutcome(state, self.history, summary, best_epoch)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        config, net = self.config, self.net
        net.train()
        steps = len(self.train_set)
        total, done, lr = 0.0, 0, config.lr
        for batch in self.train_set.epoch(shuffle=True):
            lr = _learning_rate(config, self.step, steps * config.epochs, self.elapsed())
            for group in self.optimiser.param_groups:
                group["lr"] = lr
            augmented = augment(batch, self.generator, self.crop) if config.augment else batch
            loss, _ = _loss(net, augmented, self.device)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), _CLIP_GRAD_NORM, foreach=True)
            self.optimiser.step()
            self.average.update(net)
            total, done, self.step = total + float(loss.detach()), done + 1, self.step + 1
            if self.progress:
                self.progress(
                    TrainProgress("step", epoch, config.epochs, done, steps, {"loss": total / done})
                )
            if self.out_of_time():
                break
        return {
            "epoch": float(epoch),
            "train_loss": total / max(done, 1),
            "lr": lr,
            "steps": float(done),
            "seconds": round(self.elapsed(), 3),  # since training began, at the end of this epoch
        }

    def end_epoch(self, epoch: int, metrics: dict[str, float], last: bool) -> None:
        """Validate the averaged weights (past ``validate_from``), keep the best yet, report the epoch.

        Early epochs of a short run are rarely the best, and validating them took a sixth of a
        60 s budget; their history rows carry the training metrics only.
        """
        config = self.config
        planned = len(self.train_set) * config.epochs
        validate = self.val_set is not None and (
            last or _progress(config, self.step, planned, self.elapsed()) >= config.validate_from
        )
        with self.average.swapped_in(self.net):
            # Higher is better: validation mAP@0.5 when there is a validation slice, else -loss;
            # an epoch not validated is no candidate.
            score: float | None = -metrics["train_loss"]
            if self.val_set is not None and validate:
                started = time.perf_counter()
                metrics.update(_validate(self.net, self.val_set, config.input_size, self.device))
                metrics["val_seconds"] = round(time.perf_counter() - started, 3)
                score = metrics["val_map50"]
            elif self.val_set is not None:
                score = None
            self.history.append(metrics)
            if score is not None and (self.best is None or score >= self.best[0]):
                state = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
                self.best = (score, epoch, state)
            if self.progress:
                steps = len(self.train_set)
                self.progress(TrainProgress("epoch", epoch, self.config.epochs, steps, steps, metrics))


@register_adapter("detector")
class DetectorAdapter:
    """The built-in anchor-free detector; see :mod:`cvcycle.models.centernet` for the network."""

    name = "detector"
    # Recorded in the config of every new run that does not set them (and does not start from, or
    # repeat, a version without them): the network a version was built with stays on its record.
    default_options: Mapping[str, Any] = {"stride": 4, "head": "shared"}

    def build(self, config: AdapterConfig, classes: Sequence[str]) -> CenterNet:
        _check_options(config.options)
        if not classes:
            raise InvalidInput("a detector needs at least one class", hint="label some boxes first")
        network = {**_LEGACY_NETWORK, **config.options}
        try:
            return CenterNet(
                tuple(classes),
                config.width,
                config.input_size,
                config.max_detections,
                stride=int(network["stride"]),
                head=str(network["head"]),
            )
        except ValueError as exc:
            raise InvalidInput(str(exc), hint="use an input_size such as 160x224") from exc

    def train(
        self, module: torch.nn.Module, data: TrainingData, config: AdapterConfig, progress: ProgressFn | None
    ) -> TrainOutcome:
        if not data.train:
            raise InvalidInput("the training slice has no frames", hint="check --train-slice")
        return _Training(_as_centernet(module), data, config, progress).run()

    def predict(
        self, module: torch.nn.Module, images: Sequence[np.ndarray], config: AdapterConfig, threshold: float
    ) -> list[Detections]:
        net = _as_centernet(module)
        device = next(net.parameters()).device
        net.eval()
        out: list[Detections] = []
        for start in range(0, len(images), config.batch_size):
            batch, scales = prepare_batch(images[start : start + config.batch_size], config.input_size)
            with torch.inference_mode():
                boxes, scores, classes = net(torch.from_numpy(batch).to(device))
            out.extend(
                to_detections(
                    boxes.cpu().numpy(),
                    scores.cpu().numpy(),
                    classes.cpu().numpy(),
                    scales,
                    net.classes,
                    threshold,
                )
            )
        return out

    def export_inputs(self, module: torch.nn.Module, config: AdapterConfig) -> ExportInputs:
        height, width = config.input_size
        example = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
        batch_axis = {0: "batch"}
        return ExportInputs(
            args=(example,),
            input_names=["images"],
            output_names=["boxes", "scores", "classes"],
            dynamic_axes={
                "images": batch_axis,
                "boxes": batch_axis,
                "scores": batch_axis,
                "classes": batch_axis,
            },
        )
