"""The composition root: the one place that builds engines (and, later, schedulers and the API)."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.store.engine import make_engine, migrate


def open_store(settings: Settings) -> Engine:
    """The configured store, migrated to the newest schema."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return engine
