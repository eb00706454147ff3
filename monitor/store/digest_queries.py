"""The weekly digest's delivery rows (`digest_deliveries`): queued, claimed, recorded.

Statuses: `pending` (queued), `sending` (claimed by one process), `sent`, `failed` (tried
again after a wait) and `given_up`. A claim is a conditional update from the status and the
attempt count the claimer saw, so of two replicas at most one sends a delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from monitor.store.tables import cycles, digest_deliveries

__all__ = ["Delivery", "claim", "due", "enqueue", "latest_done_cycle", "record"]

OPEN = ("pending", "sending", "failed")


@dataclass(frozen=True)
class Delivery:
    pk: int
    feature: str
    cycle_at: datetime
    channel: str
    status: str
    attempts: int


def latest_done_cycle(conn: Connection, feature: str) -> datetime | None:
    query = select(func.max(cycles.c.at)).where(cycles.c.feature == feature, cycles.c.status == "done")
    found: datetime | None = conn.execute(query).scalar_one()
    return found


def enqueue(
    conn: Connection, feature: str, cycle_at: datetime, channels: Sequence[str], now: datetime
) -> int:
    """Queue the cycle's digest on each channel that has no row for it yet; how many were queued."""
    known = set(
        conn.execute(
            select(digest_deliveries.c.channel).where(
                digest_deliveries.c.feature == feature, digest_deliveries.c.cycle_at == cycle_at
            )
        ).scalars()
    )
    new = [
        {
            "feature": feature,
            "cycle_at": cycle_at,
            "channel": channel,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for channel in channels
        if channel not in known
    ]
    if new:
        conn.execute(insert(digest_deliveries), new)
    return len(new)


def due(
    conn: Connection,
    now: datetime,
    retry_after: Sequence[timedelta],
    stale_after: timedelta,
    feature: str | None = None,
) -> list[Delivery]:
    """Deliveries to try now: queued ones, failed ones whose wait is over, and claims left stale."""
    query = select(digest_deliveries).where(digest_deliveries.c.status.in_(OPEN))
    if feature is not None:
        query = query.where(digest_deliveries.c.feature == feature)
    found = []
    for row in conn.execute(query.order_by(digest_deliveries.c.pk)).mappings():
        age = now - row["updated_at"]
        waited = {
            "pending": True,
            "failed": 0 < row["attempts"] <= len(retry_after) and age >= retry_after[row["attempts"] - 1],
            "sending": age >= stale_after,
        }[row["status"]]
        if waited:
            found.append(
                Delivery(
                    row["pk"], row["feature"], row["cycle_at"], row["channel"], row["status"], row["attempts"]
                )
            )
    return found


def claim(conn: Connection, delivery: Delivery, now: datetime) -> bool:
    """Mark the delivery `sending` for this process, unless another process changed it first."""
    result = conn.execute(
        update(digest_deliveries)
        .where(
            digest_deliveries.c.pk == delivery.pk,
            digest_deliveries.c.status == delivery.status,
            digest_deliveries.c.attempts == delivery.attempts,
        )
        .values(status="sending", attempts=delivery.attempts + 1, updated_at=now)
    )
    return bool(result.rowcount)


def record(conn: Connection, pk: int, status: str, error: str | None, now: datetime) -> None:
    values: dict[str, object] = {"status": status, "last_error": error, "updated_at": now}
    if status == "sent":
        values["sent_at"] = now
    conn.execute(update(digest_deliveries).where(digest_deliveries.c.pk == pk).values(**values))
