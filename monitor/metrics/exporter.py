"""The Prometheus exporter: what `GET /metrics` serves.

- `monitor.metrics.specs`: every metric with its type, labels and help text (`METRICS`;
  CONTRACT section 6 names the ones dashboards and alert rules rely on);
- `monitor.metrics.collector`: `QualityCollector`, which reads the latest persisted results at
  scrape time; `monitor.metrics.results` builds the families of what the cycles stored,
  `monitor.metrics.families` holds the families a scrape fills;
- `monitor.metrics.exposition`: `TextExposition`, the text format, reusing unchanged families.

`build_registry` puts the collector together with the process's own metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.metrics.collector import QualityCollector
from monitor.metrics.exposition import TextExposition
from monitor.metrics.specs import METRICS, MODES, USER_ACTIONS, MetricSpec

__all__ = [
    "METRICS",
    "MODES",
    "USER_ACTIONS",
    "MetricSpec",
    "QualityCollector",
    "TextExposition",
    "build_registry",
]


def build_registry(
    engine: Engine, settings: Settings, clock: Callable[[], datetime] | None = None
) -> CollectorRegistry:
    """A registry with the quality collector and the process's own metrics (CPU, memory, fds)."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector(engine, settings, clock))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
