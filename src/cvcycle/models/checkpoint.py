"""The checkpoint format: one ``torch.save`` blob holding the weights and everything to rebuild the module.

``{"format": 1, "adapter": name, "config": {...}, "classes": [...], "state_dict": {...}}``, read
back with ``weights_only=True`` (plain containers and tensors only, no pickled code), so a
checkpoint from anywhere can be loaded without trusting it to run code. A bare ``state_dict``
(weights registered from elsewhere) is read too; its adapter, config and classes are then None
and come from the registry record.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cvcycle.errors import CorruptBlob

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    adapter: str | None
    config: dict[str, Any] | None
    classes: tuple[str, ...] | None
    state_dict: dict[str, torch.Tensor]


def checkpoint_bytes(
    state_dict: Mapping[str, torch.Tensor], *, adapter: str, config: Mapping[str, Any], classes: Sequence[str]
) -> bytes:
    """Serialise weights (moved to the CPU, contiguous) with the adapter, config and classes."""
    buffer = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "adapter": adapter,
            "config": dict(config),
            "classes": list(classes),
            "state_dict": {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()},
        },
        buffer,
    )
    return buffer.getvalue()


def read_checkpoint(data: bytes, where: str = "checkpoint") -> Checkpoint:
    """Parse ``checkpoint_bytes`` output; anything else is a CorruptBlob naming ``where``."""
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise CorruptBlob(f"{where} is not a readable torch checkpoint: {exc}") from exc
    if isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return Checkpoint(None, None, None, {str(k): v for k, v in raw.items()})
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CorruptBlob(f"{where} has checkpoint format {found!r}, expected {CHECKPOINT_FORMAT}")
    return Checkpoint(
        adapter=str(raw["adapter"]),
        config=dict(raw["config"]),
        classes=tuple(raw["classes"]),
        state_dict=dict(raw["state_dict"]),
    )
