"""Loading a registered model version as a ready ``Predictor``: checkpoint from the store, module rebuilt.

The checkpoint blob is read by the key and size the version records (the store refuses a blob of
another size), its adapter builds the module from the recorded config and classes, and the weights
are loaded strictly. The result predicts like any other ``Predictor`` and also exposes the module
and the adapter, which export needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cvcycle.db import Database
from cvcycle.errors import CorruptBlob, NotFound
from cvcycle.models.adapter import ModelAdapter, create_adapter, resolve_device
from cvcycle.models.checkpoint import read_checkpoint
from cvcycle.models.config import TrainConfig
from cvcycle.models.detections import Detections
from cvcycle.refs import ModelRef
from cvcycle.registry.versions import resolve_model_ref
from cvcycle.store import BlobStore


@dataclass
class LoadedModel:
    """A model version in memory: a ``Predictor`` with its module, adapter and config at hand."""

    version: ModelRef  # the version loaded: NAME@N, whatever reference named it
    adapter: ModelAdapter
    module: torch.nn.Module
    config: TrainConfig
    classes: tuple[str, ...]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.config.input_size

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.0) -> list[Detections]:
        """Detections per RGB image (HxWx3 uint8), in image pixels, scoring at least ``threshold``."""
        if not images:
            return []
        return self.adapter.predict(self.module, images, self.config, threshold)


def load_model(db: Database, store: BlobStore, ref: str | ModelRef, device: str = "cpu") -> LoadedModel:
    """Load ``ref`` (``detector@3``, ``detector:production``, ``detector``) on ``device``, in eval mode.

    The device is the caller's choice, not the training config's: a model trained on a GPU loads
    on a CPU-only serving or evaluation box.
    """
    with db.read() as session:
        version = resolve_model_ref(session, ref)
        name, number, adapter_name = version.name, version.version, version.adapter
        artifacts, recorded_classes, recorded_config = (
            dict(version.artifacts),
            version.classes,
            version.config,
        )
    loaded = ModelRef(name, number)
    where = str(loaded)
    blob = artifacts.get("checkpoint")
    if not isinstance(blob, dict) or "key" not in blob:
        raise NotFound(f"{where} has no checkpoint artifact", hint="it was not trained by cvcycle train")
    checkpoint = read_checkpoint(store.get_bytes(blob["key"], blob.get("size")), f"the checkpoint of {where}")
    classes = tuple(recorded_classes)
    # A bare state_dict carries no adapter or classes; one saved by cvcycle must agree with the record.
    if (checkpoint.adapter is not None and checkpoint.adapter != adapter_name) or (
        checkpoint.classes is not None and checkpoint.classes != classes
    ):
        raise CorruptBlob(
            f"the checkpoint of {where} does not match its registry record "
            f"(adapter {checkpoint.adapter!r} vs {adapter_name!r}, classes {list(checkpoint.classes or ())} "
            f"vs {list(classes)})"
        )
    config = TrainConfig.model_validate({**recorded_config, "device": device})
    adapter = create_adapter(adapter_name)
    module = adapter.build(config, classes)
    try:
        module.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as exc:
        raise CorruptBlob(f"the weights in the checkpoint of {where} do not fit its module: {exc}") from exc
    module.to(resolve_device(device))
    module.eval()
    return LoadedModel(loaded, adapter, module, config, classes)
