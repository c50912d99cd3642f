"""References to datasets, models and their versions: the one grammar, parsed, checked and formatted.

A name (of a dataset or a model) is letters, digits, ``.``, ``_`` or ``-``, starting with a letter
or a digit, at most 200 characters. An alias starts with a letter, at most 100 characters. A
reference is a name, optionally followed by a version or, for a model, an alias:

========================  ===============================================================
``NAME@N``                version N (N >= 1)
``NAME@latest``           the newest version (of a dataset: the newest committed one)
``NAME:ALIAS``            a model's version that the alias points at (``detector:production``)
``NAME``                  a dataset's working copy; a model's newest version, or, where a
                          command filters by model (``events list --model``), all its versions
========================  ===============================================================

``parse_dataset_ref`` and ``parse_model_ref`` turn text into a ``DatasetRef`` or ``ModelRef``;
``str()`` of either, and ``format_ref`` for a name and a version, write one back. What a reference
names is looked up elsewhere: datasets in ``data/datasets.py`` (``resolve_ref``), models in
``registry/versions.py`` (``resolve_model_ref``, ``resolve_model_filter``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cvcycle.errors import InvalidInput

#: The word a reference uses for the newest version.
LATEST: Literal["latest"] = "latest"
#: Version numbers are 32-bit integers in the metadata database.
MAX_VERSION = 2**31 - 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
_NUMBER = re.compile(r"[0-9]+")
_NAME_RULE = "use letters, digits, '.', '_' or '-', starting with a letter or digit"
_DATASET_FORMS = "write NAME@N with N >= 1, NAME@latest, or NAME for the working copy"
_MODEL_FORMS = (
    "write NAME@N (a version), NAME:ALIAS (e.g. detector:production), or NAME@latest or NAME (the newest)"
)

Version = int | Literal["latest"] | None


def format_ref(name: str, version: int | str | None = None, *, alias: str | None = None) -> str:
    """``name@version``, ``name:alias`` or ``name``: how every reference and version label is written."""
    if version is not None:
        return f"{name}@{version}"
    if alias is not None:
        return f"{name}:{alias}"
    return name


@dataclass(frozen=True)
class DatasetRef:
    """A dataset name and a version: a number, ``"latest"``, or None for the working copy."""

    name: str
    version: Version = None

    def __str__(self) -> str:
        return format_ref(self.name, self.version)


@dataclass(frozen=True)
class ModelRef:
    """A model name and at most one of a version (a number or ``"latest"``) and an alias."""

    name: str
    version: Version = None
    alias: str | None = None

    @property
    def number(self) -> int | None:
        """The version number when the reference names one (``NAME@N``); None otherwise."""
        return self.version if isinstance(self.version, int) else None

    def __str__(self) -> str:
        return format_ref(self.name, self.version, alias=self.alias)


def is_valid_name(text: str) -> bool:
    """Whether ``text`` is a valid name of a dataset, model (or anything else named the same way)."""
    return _NAME.fullmatch(text) is not None


def check_dataset_name(name: str) -> str:
    if not is_valid_name(name):
        raise InvalidInput(f"dataset name {name!r} is not valid", hint=_NAME_RULE)
    return name


def check_model_name(name: str) -> str:
    if not is_valid_name(name):
        raise InvalidInput(f"model name {name!r} is not valid", hint=_NAME_RULE)
    return name


def check_alias(alias: str) -> str:
    if _ALIAS.fullmatch(alias) is None:
        raise InvalidInput(
            f"alias {alias!r} is not valid",
            hint="an alias starts with a letter, then letters, digits, '.', '_' or '-' (e.g. production)",
        )
    return alias


def _version(text: str) -> int | Literal["latest"] | None:
    """The version after ``@``: a number from 1 to MAX_VERSION or ``latest``; None when invalid."""
    if text == LATEST:
        return LATEST
    if _NUMBER.fullmatch(text) is None or not 1 <= int(text) <= MAX_VERSION:
        return None
    return int(text)


def parse_dataset_ref(text: str) -> DatasetRef:
    """Parse ``NAME``, ``NAME@N`` or ``NAME@latest``; anything else is InvalidInput."""
    name, sep, version_text = text.strip().partition("@")
    check_dataset_name(name)
    if not sep:
        return DatasetRef(name)
    version = _version(version_text)
    if version is None:
        raise InvalidInput(
            f"dataset reference {text!r} has an invalid version {version_text!r}", hint=_DATASET_FORMS
        )
    return DatasetRef(name, version)


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``NAME@N``, ``NAME@latest``, ``NAME:ALIAS`` or ``NAME``; anything else is InvalidInput."""
    text = text.strip()
    if "@" in text and ":" in text:
        raise InvalidInput(f"model reference {text!r} mixes a version and an alias", hint=_MODEL_FORMS)
    if "@" in text:
        name, _, version_text = text.partition("@")
        if not is_valid_name(name):
            raise InvalidInput(f"model reference {text!r} has no valid model name", hint=_MODEL_FORMS)
        version = _version(version_text)
        if version is None:
            raise InvalidInput(
                f"model reference {text!r} has an invalid version {version_text!r}", hint=_MODEL_FORMS
            )
        return ModelRef(name, version)
    if ":" in text:
        name, _, alias = text.partition(":")
        if not is_valid_name(name) or _ALIAS.fullmatch(alias) is None:
            raise InvalidInput(f"model reference {text!r} is malformed", hint=_MODEL_FORMS)
        return ModelRef(name, alias=alias)
    if not is_valid_name(text):
        raise InvalidInput(f"model reference {text!r} is malformed", hint=_MODEL_FORMS)
    return ModelRef(text)
