"""Shared, module-cached clips: generating and rendering costs ~0.1-0.2 s per clip, so reuse them."""

from __future__ import annotations

import pytest

from cvcycle.synth import ClipSpec, generate_clips


@pytest.fixture(scope="session")
def day_clips() -> list[ClipSpec]:
    return generate_clips(4, "day", seed=1)


@pytest.fixture(scope="session")
def night_dog_clips() -> list[ClipSpec]:
    return generate_clips(3, "night", dogs=True, seed=2)


@pytest.fixture(scope="session")
def dim_dog_clips() -> list[ClipSpec]:
    return generate_clips(3, "dim", dogs=True, seed=3)
