"""The lock-free counters and histograms expose what prometheus_client's own would."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bridge.obs.loop_metrics import LoopCounter, LoopHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LABELS = st.sampled_from([("accepted", "GET"), ("rejected", "JSON"), ("error", "POST")])
VALUES = st.one_of(
    st.sampled_from([0.0, *BUCKETS]),  # on a bucket's bound: counted in that bucket (le)
    st.floats(min_value=0, max_value=20, allow_nan=False),
)


def _exposition(registry: CollectorRegistry) -> str:
    # Creation times differ by the microseconds between the two constructions.
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


@given(st.lists(st.tuples(LABELS, VALUES), max_size=40))
def test_same_exposition_as_prometheus_client(
    observations: list[tuple[tuple[str, str], float]],
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    names = ["outcome", "method"]
    counter = Counter("x_callbacks", "Callbacks.", names, registry=theirs)
    histogram = Histogram("x_seconds", "Seconds.", names, buckets=BUCKETS, registry=theirs)
    loop_counter = LoopCounter("x_callbacks", "Callbacks.", names, ours)
    loop_histogram = LoopHistogram("x_seconds", "Seconds.", names, ours, buckets=BUCKETS)
    for labels, value in observations:
        counter.labels(*labels).inc()
        histogram.labels(*labels).observe(value)
        loop_counter.labels(*labels).inc()
        loop_histogram.labels(*labels).observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_refuses_what_prometheus_client_refuses() -> None:
    counter = LoopCounter("y_total_things", "Things.", ["a"], CollectorRegistry())
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("1").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("1", "2")
    registry = CollectorRegistry()
    LoopCounter("z", "Z.", [], registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("z", "Z.", registry=registry)
