"""The model registry: versions, aliases and lineage (``versions``), loading a version (``loading``).

The grammar of model references (``ModelRef``, ``parse_model_ref``) is ``cvcycle.refs``.

The names below are re-exported lazily, so importing one registry module (the Triton writer, say)
does not import torch through ``loading``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvcycle.registry.loading import LoadedModel, load_model
    from cvcycle.registry.versions import (
        ModelVersionInfo,
        alias_history,
        create_model_version,
        lineage,
        list_model_versions,
        next_version_number,
        resolve_model_filter,
        resolve_model_ref,
        set_alias,
    )

_EXPORTS = {
    "LoadedModel": "loading",
    "load_model": "loading",
    "ModelVersionInfo": "versions",
    "alias_history": "versions",
    "create_model_version": "versions",
    "lineage": "versions",
    "list_model_versions": "versions",
    "next_version_number": "versions",
    "resolve_model_filter": "versions",
    "resolve_model_ref": "versions",
    "set_alias": "versions",
}

__all__ = [
    "LoadedModel",
    "ModelVersionInfo",
    "alias_history",
    "create_model_version",
    "lineage",
    "list_model_versions",
    "load_model",
    "next_version_number",
    "resolve_model_filter",
    "resolve_model_ref",
    "set_alias",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvcycle.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cvcycle.registry.{module}"), name)
