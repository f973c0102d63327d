"""A metadata probe restores readiness after a failed produce only once writes are known to
work again, or nobody has tried for a while."""

from __future__ import annotations

import pytest

from bridge.kafka.readiness import probe_may_restore


@pytest.mark.parametrize(
    ("failed_at", "now", "expected"),
    [
        (None, 100.0, True),  # no produce failed since the last one succeeded
        (99.0, 100.0, False),  # a produce failed a second ago: metadata alone proves nothing
        (86.5, 100.0, False),  # still within the hold
        (86.0, 100.0, True),  # a whole hold without a failure: nothing has tried since
        (10.0, 100.0, True),
    ],
)
def test_probe_may_restore(failed_at: float | None, now: float, expected: bool) -> None:
    assert probe_may_restore(failed_at, now, hold=14.0) is expected
