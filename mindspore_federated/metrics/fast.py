"""Lock-free accumulators for the hot paths: plain attribute increments on the event loop's thread (every
user of them runs on one loop per process), turned into Prometheus families only when scraped."""
from bisect import bisect_left

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily


class LoopCounter:
    """A counter of one label set: `value += n`."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def inc(self, amount=1):
        self.value += amount


class LoopHistogram:
    """A histogram of one label set: one bisect and two additions per observation."""

    __slots__ = ("bounds", "buckets", "total")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)   # the last one is +Inf
        self.total = 0.0

    def observe(self, value):
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self):
        out, running = [], 0
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), self.buckets):
            running += count
            out.append((bound, running))
        return out


def _le(bound):
    return repr(float(bound))


class LoopFamilies:
    """A collector of labelled LoopCounters and LoopHistograms, created once (`counter`, `histogram`)."""

    def __init__(self):
        self._counters = {}     # name -> (doc, label names, {label values: LoopCounter})
        self._histograms = {}   # name -> (doc, label names, bounds, {label values: LoopHistogram})

    def counter(self, name, doc, labelnames, values):
        """The LoopCounter of `name{labelnames=values}` (the family name without `_total`)."""
        family = self._counters.setdefault(name, (doc, tuple(labelnames), {}))
        return family[2].setdefault(tuple(values), LoopCounter())

    def histogram(self, name, doc, labelnames, values, bounds):
        family = self._histograms.setdefault(name, (doc, tuple(labelnames), tuple(bounds), {}))
        return family[3].setdefault(tuple(values), LoopHistogram(family[2]))

    def describe(self):
        return []

    def collect(self):
        for name, (doc, labels, children) in self._counters.items():
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, child in list(children.items()):
                family.add_metric(list(values), child.value)
            yield family
        for name, (doc, labels, _bounds, children) in self._histograms.items():
            family = HistogramMetricFamily(name, doc, labels=labels)
            for values, child in list(children.items()):
                family.add_metric(list(values), child.cumulative(), child.total)
            yield family
