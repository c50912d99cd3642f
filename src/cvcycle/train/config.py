"""The training config: one typed schema and one precedence rule for where each value comes from.

Precedence, lowest to highest::

    defaults  <  config file (YAML)  <  parent run's config (--from MODEL@N, or a clone)  <  --set key=value

A parent run contributes its whole resolved config, so a clone repeats its parent exactly except
for what ``--set`` changes. Every key records the layer its value came from (``Run.config_sources``),
and a value that a higher layer replaces with a different one is reported as shadowed, so nothing
silently overrides what the user wrote. Unknown keys are errors in every layer.

The schema itself, ``TrainConfig``, is defined beside the adapters (:mod:`cvcycle.models.config`),
which build modules from it, and re-exported here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cvcycle.errors import InvalidInput
from cvcycle.models.config import TrainConfig

LAYERS = ("default", "file", "parent", "set")


__all__ = [
    "KEYS",
    "LAYERS",
    "ResolvedConfig",
    "Shadowed",
    "TrainConfig",
    "parse_sets",
    "read_config_file",
    "resolve_config",
]

KEYS = tuple(TrainConfig.model_fields)


@dataclass(frozen=True)
class Shadowed:
    """A value one layer set that a higher layer replaced with a different one."""

    key: str
    value: Any
    source: str
    by: str
    replaced_with: Any

    def describe(self) -> str:
        return (
            f"{self.key}={self.value!r} from the {self.source} layer is overridden by "
            f"the {self.by} layer ({self.replaced_with!r})"
        )


@dataclass(frozen=True)
class ResolvedConfig:
    config: TrainConfig
    sources: dict[str, str]  # key -> default | file | parent | set
    overrides: dict[str, Any]  # what --set gave, as validated values
    shadowed: list[Shadowed] = field(default_factory=list)


def _unknown_key(key: str, where: str) -> InvalidInput:
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return InvalidInput(f"unknown config key {key!r} in {where}", hint=f"{hint}known keys: {', '.join(KEYS)}")


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a YAML config file; unknown keys and non-mappings are errors naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(
            f"config file {path} must hold a mapping of keys to values, not {type(data).__name__}"
        )
    for key in data:
        if key not in KEYS:
            raise _unknown_key(str(key), f"config file {path}")
    return dict(data)


def parse_sets(items: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """The ``--set`` layer as a mapping, from ``["lr=0.005", "input_size=160x224", "options.depth=3"]``
    (values are YAML scalars) or from a mapping such as ``{"lr": 0.005}``. Unknown keys are errors."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise InvalidInput(f"--set {item!r} is not KEY=VALUE", hint="for example --set lr=0.005")
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            if isinstance(value, str) and value.strip().lower() == "none":
                value = None  # YAML says null; the config's help says "none for no budget"
            pairs.append((key.strip(), value))
    values: dict[str, Any] = {}
    for key, value in pairs:
        head, dot, option = key.partition(".")
        if dot:
            if head != "options" or not option:
                raise _unknown_key(key, "--set")
            values.setdefault("options", {})[option] = value
            continue
        if key not in KEYS:
            raise _unknown_key(key, "--set")
        if key == "options" and isinstance(value, Mapping):
            values.setdefault("options", {}).update(value)
            continue
        values[key] = value
    return values


def _validate(merged: dict[str, Any], sources: dict[str, str]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = sources.get(key, "default")
            shown = f"--set {key}" if where == "set" else f"{key} (from {where})"
            problems.append(f"{shown}={merged.get(key)!r}: {error['msg']}")
        raise InvalidInput(
            "invalid training config: " + "; ".join(problems),
            hint="`cvcycle train --help` lists the keys; values follow YAML (0.005, 192x256, false, null)",
        ) from None


def resolve_config(
    file: Mapping[str, Any] | None = None,
    parent: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
) -> ResolvedConfig:
    """Apply the layers in precedence order; see the module docstring."""
    defaults = TrainConfig().to_record()
    merged: dict[str, Any] = dict(defaults)
    sources = dict.fromkeys(defaults, "default")
    layers = (("file", file or {}), ("parent", parent or {}), ("set", sets or {}))
    for layer, values in layers:
        for key in values:
            if key not in KEYS:
                raise _unknown_key(key, "--set" if layer == "set" else f"the {layer} config")
    # Validate each layer on its own first, so an error names the layer that holds the bad value.
    for layer, values in layers:
        _validate({**defaults, **values}, dict.fromkeys(values, layer))
    shadowed: list[Shadowed] = []
    for layer, values in layers:
        for key, value in values.items():
            if key == "options" and layer == "set" and isinstance(value, dict):
                value = {**merged.get("options", {}), **value}
            typed = TrainConfig.model_validate({**defaults, key: value}).to_record()[key]
            if sources[key] != "default" and typed != merged[key]:
                shadowed.append(Shadowed(key, merged[key], sources[key], layer, typed))
            merged[key] = typed
            sources[key] = layer
    config = _validate(merged, sources)
    overrides = {key: config.to_record()[key] for key in (sets or {})}
    return ResolvedConfig(config, sources, overrides, shadowed)
