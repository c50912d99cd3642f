"""Spot checks: a seeded, stable draw of the configured share of tasks."""

from __future__ import annotations

import pytest

from cvcycle.annotate.review import SpotCheck
from cvcycle.errors import InvalidInput


def test_the_share_is_respected_and_the_draw_is_stable() -> None:
    check = SpotCheck(share=0.2, seed=3)
    picked = [t for t in range(1, 5001) if check.picks(t)]
    assert 0.18 < len(picked) / 5000 < 0.22
    assert picked == [t for t in range(1, 5001) if SpotCheck(share=0.2, seed=3).picks(t)]
    other = {t for t in range(1, 5001) if SpotCheck(share=0.2, seed=4).picks(t)}
    assert other != set(picked)


def test_none_and_all() -> None:
    assert not any(SpotCheck(0.0).picks(t) for t in range(1000))
    assert all(SpotCheck(1.0).picks(t) for t in range(1000))


def test_a_share_outside_0_1_is_refused() -> None:
    with pytest.raises(InvalidInput, match="share"):
        SpotCheck(1.5)
