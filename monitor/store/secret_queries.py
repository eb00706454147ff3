"""Secrets the daemon's replicas share, stored once in the store (table `daemon_secrets`)."""

from __future__ import annotations

import secrets

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from monitor.store.tables import daemon_secrets

__all__ = ["shared_secret"]


def shared_secret(engine: Engine, name: str, size: int = 32) -> bytes:
    """The secret called `name`: the stored one, or a random one stored now (the first writer wins)."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        conn.execute(
            insert(daemon_secrets)
            .values(name=name, value=secrets.token_bytes(size))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = conn.execute(select(daemon_secrets.c.value).where(daemon_secrets.c.name == name)).scalar_one()
    return bytes(value)
