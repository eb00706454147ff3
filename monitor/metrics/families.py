"""Metric families filled during a scrape, and the small conversions the builders share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from monitor.metrics.specs import METRICS, SPECS

__all__ = ["Families", "in_order", "number", "ts"]


class Families:
    """Metric families being filled, created on first use."""

    def __init__(self) -> None:
        self.made: dict[str, Metric] = {}

    def _family(self, name: str) -> Metric:
        family = self.made.get(name)
        if family is None:
            spec = SPECS[name]
            labels = list(spec.labels)
            unit = "seconds" if name.endswith("_seconds") and spec.kind != "info" else ""
            if spec.kind == "gauge":
                family = GaugeMetricFamily(name, spec.help, labels=labels, unit=unit)
            elif spec.kind == "counter":
                family = CounterMetricFamily(name, spec.help, labels=labels)
            elif spec.kind == "summary":
                family = SummaryMetricFamily(name, spec.help, labels=labels, unit=unit)
            else:
                family = InfoMetricFamily(name, spec.help, labels=[])
            self.made[name] = family
        return family

    def add(self, name: str, labels: Sequence[str], value: float | None) -> None:
        """A sample (skipped when the value is unknown)."""
        if value is None:
            return
        family = self._family(name)
        assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
        family.add_metric(list(labels), float(value))

    def info(self, name: str, values: Mapping[str, str]) -> None:
        family = self._family(name)
        assert isinstance(family, InfoMetricFamily)
        family.add_metric([], dict(values))

    def summary(self, name: str, labels: Sequence[str], count: int, total: float) -> None:
        family = self._family(name)
        assert isinstance(family, SummaryMetricFamily)
        family.add_metric(list(labels), count, total)


def in_order(*groups: Families) -> Iterator[Metric]:
    """The families of all groups in `METRICS` order (each name is filled by one group)."""
    for spec in METRICS:
        for group in groups:
            family = group.made.get(spec.name)
            if family is not None:
                yield family
                break


def ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number else None
