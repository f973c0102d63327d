"""Counters and histograms for the per-callback path: updated from the event loop, no lock.

``prometheus_client`` guards every value with a ``threading.Lock``: a callback's counter and
two latency observations take five lock round trips, on the receiver's one busy core. The
receiver and its publisher only ever update these from the event loop's one thread, so plain
attributes do; the registry reads them when scraped. The exposition is the same as
``prometheus_client.Counter`` and ``Histogram`` give (a unit test compares them).

Only for metrics that no other thread updates: a worker thread must use ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class CounterChild:
    """One label combination of a :class:`LoopCounter`."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (not negative)."""
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class HistogramChild:
    """One label combination of a :class:`LoopHistogram`."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        # One count per bucket, not cumulative; the last is +Inf.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``."""
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value


C = TypeVar("C", CounterChild, HistogramChild)


class _Labelled(Collector, Generic[C]):
    """A family: one child per label combination, made by ``_new_child`` on first use."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    @abstractmethod
    def _new_child(self) -> C:
        """A child for a label combination seen for the first time."""

    def labels(self, *values: str) -> C:
        """The child for these label values, created on first use."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child


class LoopCounter(_Labelled[CounterChild]):
    """``prometheus_client.Counter`` with labels, for one thread (see the module doc)."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def describe(self) -> list[Metric]:
        """The family without samples (the registry checks names with it)."""
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        """The family with a sample per label combination."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value, created=child.created)
        yield family


class LoopHistogram(_Labelled[HistogramChild]):
    """``prometheus_client.Histogram`` with labels, for one thread (see the module doc)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        self._bounds = sorted(float(b) for b in buckets if b != float("inf"))
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def describe(self) -> list[Metric]:
        """The family without samples (the registry checks names with it)."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        """The family: cumulative buckets, count, sum and created, per label combination."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric(list(values), buckets, total)
            labels = dict(zip(self.labelnames, values, strict=True))
            family.samples.append(Sample(f"{self.name}_created", labels, child.created))
        yield family
