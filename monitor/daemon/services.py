"""What the daemon's routes and jobs share: the store, the settings, the cycle runner, the clock.

Built once by the composition root (`monitor.daemon.app.build_services`) and handed to `create_app`,
the scheduler and the review page; nothing here builds anything. The scheduler is described by
what its users need of it (a protocol), so this module imports neither the scheduler (which
imports it) nor the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cycle.runner import CycleRunner
from monitor.daemon.read_cache import ReadCache
from monitor.daemon.tokens import TokenBook
from monitor.reporting.notify import Notifier

__all__ = ["JobScheduler", "Services"]


class JobScheduler(Protocol):
    """Runs the scheduled cycles (`monitor.daemon.scheduler.FeatureScheduler`)."""

    @property
    def running(self) -> bool:
        """Running the jobs: the leader, started and not shut down."""

    @property
    def active(self) -> bool:
        """Started and not shut down: running the jobs or standing by for the leadership."""

    @property
    def leader(self) -> bool:
        """Whether this process leads (runs the scheduled cycles)."""

    def start(self, *, retry_seconds: float | None = None) -> None:
        """Compete for the leadership; as leader, run the jobs."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs and competing; with `wait`, let a running cycle finish first."""

    def ensure(self, features: Iterable[str]) -> None:
        """Give features just seen their jobs, if they have none yet."""


@dataclass
class Services:
    """The daemon's shared parts."""

    engine: Engine
    settings: Settings
    runner: CycleRunner
    clock: Callable[[], datetime]
    tokens: TokenBook
    session_secret: bytes
    scheduler: JobScheduler | None = None
    notifier: Notifier | None = None
    """None when no webhook is configured (or the daemon has no HTTP client for them)."""
    registry: CollectorRegistry | None = None
    """What `GET /metrics` exposes (`monitor.metrics.exporter.build_registry`)."""
    read_cache: ReadCache = field(init=False)
    """Polled answers (modes, stored tokens) kept for `server.read_cache_seconds`."""

    def __post_init__(self) -> None:
        self.read_cache = ReadCache(self.settings.server.read_cache_seconds, self.clock)
