"""Where a file named inside an imported annotation file may live: inside the folder the user gave.

Annotation files name their images (COCO ``file_name``, CVAT ``<image name=...>``, YOLO list
files, MOT ``img1/`` paths). A name is data from the file, not from the user: ``../../etc/passwd``
or an absolute path must not make an import read a file outside the folder the user pointed at.
Every reader resolves the names it reads through :func:`resolve_inside`, so the rule is written once.
"""

from __future__ import annotations

from pathlib import Path

from cvcycle.errors import InvalidInput


def resolve_inside(root: Path, name: str, where: str, *, option: str = "--images") -> Path:
    """The file ``name`` (as written in an imported file) under ``root``, symlinks resolved.

    ``where`` names the entry for the error (``"annotations.json: images[3].file_name"``) and
    ``option`` the command-line option that gave ``root``. The resolved path, following every
    symlink on the way, must lie inside the resolved ``root``; otherwise InvalidInput names the
    entry, the name and the folder. The path is not required to exist: callers report a missing
    file in their own words.
    """
    base = root.resolve()
    try:
        candidate = (base / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise InvalidInput(f"{where} {name!r:.200} is not a usable file name: {exc}") from exc
    if not candidate.is_relative_to(base):
        raise InvalidInput(
            f"{where} {name!r:.200} points outside {option} {root}",
            hint=f"file names in an imported file are paths relative to the folder given by {option}",
        )
    return candidate
