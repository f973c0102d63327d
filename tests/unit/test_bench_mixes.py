"""The mixes benchmark runs every pair it compares next to each other in time."""

from __future__ import annotations

import pytest

from bench.mixes import MIXES, NOT_PLACED, run_order


@pytest.mark.parametrize("rep", [0, 1, 2, 3])
def test_every_ratio_compares_neighbours(rep: int) -> None:
    order = run_order(rep)
    assert sorted(order) == sorted((m, k) for m in MIXES for k in ("bridge", "naive", "bare"))
    at = {cell: i for i, cell in enumerate(order)}
    for mix in MIXES:  # bridge / naive
        assert abs(at[mix, "bridge"] - at[mix, "naive"]) == 1
    assert abs(at[NOT_PLACED, "bridge"] - at["inbound", "bridge"]) == 1  # not placed / inbound


def test_no_run_always_goes_first() -> None:
    assert run_order(0)[0] != run_order(1)[0]
    assert run_order(0) == run_order(1)[::-1]
