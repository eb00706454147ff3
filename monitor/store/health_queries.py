"""The readiness probe's question to the store."""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["ping"]


def ping(conn: Connection) -> None:
    """One round trip to the store; raises when it does not answer."""
    conn.execute(text("SELECT 1"))
