"""What a run records about where it ran: seeds, the code version and the software environment.

The code version is the git commit of the checkout cvcycle runs from and whether its working tree
has uncommitted changes to tracked files; outside a checkout (an installed wheel) both are empty.
Git is only read (``--no-optional-locks`` keeps ``git status`` from touching the index).
"""

from __future__ import annotations

import platform
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cvcycle

_GIT_TIMEOUT_S = 10


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class CodeVersion:
    sha: str  # "" outside a git checkout
    dirty: bool


def _git(args: list[str], where: Path) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "--no-optional-locks", *args],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(where: Path | None = None) -> CodeVersion:
    """The commit and dirty flag of the git checkout holding ``where`` (default: cvcycle's source)."""
    where = where or Path(cvcycle.__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], where)
    if not sha:
        return CodeVersion("", False)
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return CodeVersion(sha.strip(), bool(status and status.strip()))


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, by normalised name."""
    packages: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(packages.items()))


def capture_environment() -> dict[str, Any]:
    """Python, platform, torch and its devices, and the package list: enough to rebuild the environment."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cvcycle": cvcycle.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "torch_threads": torch.get_num_threads(),
        "packages": installed_packages(),
    }
