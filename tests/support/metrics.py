"""The Prometheus text format (`GET /metrics`), parsed by prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, its labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of an exposition (counters keep their `_total` name, histograms their `_bucket`, ...)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def sample(samples: Samples, name: str, default: float | None = None, **labels: str) -> float | None:
    """The value of one sample with exactly these labels, or `default`."""
    return samples.get((name, frozenset(labels.items())), default)
