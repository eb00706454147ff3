"""PostgreSQL session-level advisory locks, on a connection the caller keeps outside the pool.

The scheduler's leader election (`monitor.daemon.leader`) holds one for as long as it leads; the
lock ends with the session, so a leader that dies frees it.
"""

from __future__ import annotations

from sqlalchemy import Connection

__all__ = ["KEEPALIVE", "held", "keep_alive", "release", "try_acquire"]

KEEPALIVE = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)
"""A dead peer's connection (and with it the lock) is noticed within about 25 seconds."""


def keep_alive(conn: Connection) -> list[str]:
    """Set TCP keepalives on the session; the settings the server refused (the lock works without)."""
    refused = []
    for statement in KEEPALIVE:
        try:
            conn.exec_driver_sql(statement)
        except Exception:
            refused.append(statement)
    return refused


def try_acquire(conn: Connection, key: int) -> bool:
    return bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(key)})").scalar_one())


def held(conn: Connection, key: int) -> bool:
    """Whether this session holds the lock now (false once the server has dropped the session)."""
    count = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        f" AND objid = {int(key)} AND granted"
    ).scalar_one()
    return bool(count)


def release(conn: Connection, key: int) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({int(key)})")
