"""References to datasets and their versions: ``home`` (working copy), ``home@3``, ``home@latest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cvcycle.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class DatasetRef:
    """A dataset name and a version: a number, ``"latest"``, or None for the working copy."""

    name: str
    version: int | str | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def check_dataset_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"dataset name {name!r} is not valid",
            hint="use letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def parse_dataset_ref(text: str) -> DatasetRef:
    """Parse ``NAME``, ``NAME@N`` or ``NAME@latest``."""
    name, sep, version = text.partition("@")
    check_dataset_name(name)
    if not sep:
        return DatasetRef(name)
    if version == "latest":
        return DatasetRef(name, "latest")
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"dataset reference {text!r} has an invalid version {version!r}",
            hint="write NAME@N with N >= 1, NAME@latest, or NAME for the working copy",
        )
    return DatasetRef(name, int(version))
