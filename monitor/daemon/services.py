"""What the daemon's routes and jobs share: the store, the settings, the cycle runner, the clock.

Built once by the composition root (`monitor.daemon.app.build_services`) and handed to `create_app`,
the scheduler and the review page; nothing here builds anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cycle.runner import CycleRunner
from monitor.daemon.read_cache import ReadCache

if TYPE_CHECKING:
    from monitor.api.auth import TokenBook
    from monitor.daemon.scheduler import FeatureScheduler

__all__ = ["Services"]


@dataclass
class Services:
    """The daemon's shared parts. `notifier` is a `monitor.reporting.notify.Notifier` (or None: no sinks)."""

    engine: Engine
    settings: Settings
    runner: CycleRunner
    clock: Callable[[], datetime]
    tokens: TokenBook
    session_secret: bytes
    scheduler: FeatureScheduler | None = None
    notifier: Any = None
    registry: CollectorRegistry | None = None
    """What `GET /metrics` exposes (`monitor.metrics.exporter.build_registry`)."""
    read_cache: ReadCache = field(init=False)
    """Polled answers (modes, stored tokens) kept for `server.read_cache_seconds`."""

    def __post_init__(self) -> None:
        self.read_cache = ReadCache(self.settings.server.read_cache_seconds, self.clock)
