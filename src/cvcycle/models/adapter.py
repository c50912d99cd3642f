"""The model-adapter extension point: the protocol a model implements, and the registry of adapters.

An adapter turns a training config and a class list into a PyTorch module, trains it, predicts
with it and says how to export it. Adapters register by name with ``@register_adapter("name")``
or, from another distribution, through the ``cvcycle.adapters`` entry-point group (the entry
point loads a module that uses the decorator, or an adapter class registered under the entry
point's name). ``create_adapter(name)`` is the one front door; the built-in ``detector`` lives in
:mod:`cvcycle.models.detector`.

An adapter may also declare ``default_options``, a mapping of ``config.options`` that shape its
network. The training service records them in the config of every new run that does not set them,
so a version's record always says which network it has; ``build`` gives an option missing from a
record the meaning it had before the option existed, and older versions keep loading.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from cvcycle.errors import InvalidInput
from cvcycle.models.detections import Detections

ENTRY_POINT_GROUP = "cvcycle.adapters"
# Imported on first use of the registry, so that importing this module registers nothing.
_BUILTIN_MODULES = ("cvcycle.models.detector",)


class AdapterConfig(Protocol):
    """What an adapter may read of a training config (``cvcycle.train.config.TrainConfig`` has it all).

    ``options`` holds adapter-specific settings; an adapter rejects the ones it does not know.
    """

    @property
    def epochs(self) -> int: ...
    @property
    def max_seconds(self) -> float | None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def width(self) -> int: ...
    @property
    def max_detections(self) -> int: ...
    @property
    def score_threshold(self) -> float: ...
    @property
    def device(self) -> str: ...
    @property
    def num_workers(self) -> int: ...
    @property
    def augment(self) -> bool: ...
    @property
    def validate_from(self) -> float: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class LabelledFrame:
    """One training or validation image: where its pixels are, its size, and its boxes (xyxy, pixels)."""

    frame_id: int
    blob_key: str
    blob_size: int
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy in image pixels
    class_ids: np.ndarray  # (N,) int64 indices into TrainingData.classes


@dataclass(frozen=True)
class TrainingData:
    """The frames an adapter trains and validates on, with a reader for their pixels (HxWx3 uint8 RGB)."""

    classes: tuple[str, ...]
    train: Sequence[LabelledFrame]
    val: Sequence[LabelledFrame]
    read_image: Callable[[LabelledFrame], np.ndarray]


@dataclass(frozen=True)
class TrainProgress:
    """A progress report from ``train``: after every step, and at each epoch's end with its metrics."""

    kind: str  # "step" | "epoch"
    epoch: int  # 1-based
    epochs: int
    step: int  # steps done in this epoch
    steps: int  # steps per epoch
    metrics: Mapping[str, float] = field(default_factory=dict)


ProgressFn = Callable[[TrainProgress], None]


@dataclass
class TrainOutcome:
    """What training produced: the best weights, per-epoch metrics, and the figures of the best epoch."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]  # one entry per epoch: {"epoch", "train_loss", "val_loss", ...}
    metrics: dict[str, float]  # of the best epoch, plus "epochs", "steps", "seconds"
    best_epoch: int


@dataclass(frozen=True)
class ExportInputs:
    """What ``torch.onnx.export`` needs: example inputs, tensor names and the dynamic axes."""

    args: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]


@runtime_checkable
class ModelAdapter(Protocol):
    """A trainable model family. The module it builds, in eval mode, is exactly what gets exported."""

    name: str

    def build(self, config: AdapterConfig, classes: Sequence[str]) -> torch.nn.Module:
        """A fresh (untrained) module for ``classes`` shaped by ``config``."""
        ...

    def train(
        self, module: torch.nn.Module, data: TrainingData, config: AdapterConfig, progress: ProgressFn | None
    ) -> TrainOutcome:
        """Train ``module`` in place on ``data`` and return the best weights and the metrics."""
        ...

    def predict(
        self,
        module: torch.nn.Module,
        images: Sequence[np.ndarray],
        config: AdapterConfig,
        threshold: float,
    ) -> list[Detections]:
        """Detections per RGB image (HxWx3 uint8), in that image's pixels, scoring at least ``threshold``.

        The class names in the detections are those ``build`` was given.
        """
        ...

    def export_inputs(self, module: torch.nn.Module, config: AdapterConfig) -> ExportInputs:
        """Example inputs, names and dynamic axes for exporting ``module`` to ONNX."""
        ...


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA where there is none is an error, not a fallback."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInput(f"device {name!r} is not a torch device", hint="use cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInput(
                f"device {name!r} was asked for, but this torch build sees no CUDA device",
                hint="set device=cpu, or install a CUDA build of torch on a machine with a GPU",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInput(
                f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif device.type != "cpu":
        raise InvalidInput(f"device {name!r} is not supported", hint="use cpu, cuda or cuda:N")
    return device


A = TypeVar("A", bound=type)

_REGISTRY: dict[str, Callable[[], ModelAdapter]] = {}
_loaded = False


def register_adapter(name: str) -> Callable[[A], A]:
    """Class decorator: make an adapter class available to ``create_adapter(name)``."""

    def decorate(cls: A) -> A:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise InvalidInput(
                f"adapter {name!r} is registered twice ({_qualname(existing)} and {_qualname(cls)})",
                hint="give one of them another name",
            )
        _REGISTRY[name] = cls
        return cls

    return decorate


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _load_adapters() -> None:
    """Import the built-in adapters and every ``cvcycle.adapters`` entry point, once."""
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                f"adapter entry point {entry.name!r} ({entry.value}) cannot be loaded: {exc}",
                hint="fix or uninstall the distribution that declares it",
            ) from exc
        # A class that did not register itself is registered under the entry point's name.
        if isinstance(loaded, type) and entry.name not in _REGISTRY:
            _REGISTRY[entry.name] = loaded
    _loaded = True


def reload_adapters() -> None:
    """Look at the entry points again (after installing a plugin in a running process)."""
    global _loaded
    _loaded = False
    _load_adapters()


def list_adapters() -> list[str]:
    """The names of every adapter: built-in, decorated, and declared by entry points."""
    _load_adapters()
    return sorted(_REGISTRY)


def create_adapter(name: str) -> ModelAdapter:
    """The adapter registered as ``name``; InvalidInput naming it and the known ones otherwise."""
    _load_adapters()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InvalidInput(
            f"unknown model adapter {name!r}",
            hint=f"known adapters: {', '.join(sorted(_REGISTRY)) or 'none'}; "
            f"plugins register through the {ENTRY_POINT_GROUP!r} entry-point group",
        )
    adapter = factory()
    if not isinstance(adapter, ModelAdapter):
        raise InvalidInput(
            f"adapter {name!r} ({_qualname(factory)}) does not implement the ModelAdapter protocol",
            hint="it needs name, build, train, predict and export_inputs",
        )
    return adapter
