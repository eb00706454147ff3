"""The daemon's scheduler: one cron job per feature, kept in the store (being built: issue 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.api.services import Services

__all__ = ["FeatureScheduler"]


class FeatureScheduler:
    """Runs each feature's cycle on its schedule (APScheduler 3, job store in the same database)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def running(self) -> bool:
        return False
