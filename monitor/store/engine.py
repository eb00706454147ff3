"""Engines for the two supported stores, and migrations applied on start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from monitor.errors import ConfigError
from monitor.logsafe import redact

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 715517001  # pg_advisory_xact_lock key; PostgreSQL < 16 rejects 715_517_001 in SQL


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for a SQLite file (WAL mode) or PostgreSQL (psycopg 3)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"database_url {redact(url)!r} is not a database URL: {redact(str(exc))}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise ConfigError(f"database_url {redact(url)!r}: only sqlite and postgresql stores are supported")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe to run on every start)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # replicas starting at once take turns
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
