"""Every setting is documented: a row in the README's configuration table and a description.

As Datasette's ``test_settings_are_documented``: a setting added without documentation fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cvcycle.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ROW = re.compile(r"^\| `(CVCYCLE_[A-Z0-9_]+)` \| [^|]+ \| [^|]+ \|$", re.MULTILINE)
DOCUMENTED = set(ROW.findall(README))
# Read by the tests only, not by cvcycle: documented in the README's testing section.
TEST_ONLY = {"CVCYCLE_TEST_ARTIFACTS"}


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_a_readme_row_and_a_description(name: str) -> None:
    variable = f"CVCYCLE_{name.upper()}"
    assert variable in DOCUMENTED, f"{variable} has no row in the README's configuration table"
    assert Settings.model_fields[name].description, f"Settings.{name} has no description"


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {f"CVCYCLE_{name.upper()}" for name in Settings.model_fields}
    assert DOCUMENTED - known == set()


def test_every_environment_variable_the_code_names_is_a_setting() -> None:
    """A ``CVCYCLE_*`` name in the source is a documented setting, not a hidden switch."""
    found = subprocess.run(
        ["git", "grep", "-h", "-o", "-E", r"CVCYCLE_[A-Z0-9_]+", "--", "src/cvcycle/*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not found:
        pytest.skip("not a git checkout")
    assert set(found) - DOCUMENTED - TEST_ONLY == set()
