"""Webhook deliveries of trigger transitions (`notification_deliveries`): recorded once per
(event, webhook), claimed by one notifier, and their tries recorded (`monitor.reporting.notify`).

Statuses: `pending`, `sending` (claimed), `waiting` (another round of tries at
`next_attempt_at`), `delivered`, `failed` and `skipped` (too old when the webhook first saw it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import case
from sqlalchemy.sql.elements import ColumnElement

from monitor.store.tables import notification_deliveries as deliveries
from monitor.store.tables import trigger_events as events

__all__ = ["PendingDelivery", "TriggerEvent", "claim", "due", "enqueue", "record"]


@dataclass(frozen=True)
class TriggerEvent:
    """One transition of one trigger (a row of `trigger_events`)."""

    pk: int
    feature: str
    trigger: str
    scope: str
    from_state: str
    to_state: str
    at: datetime
    cycle_at: datetime | None
    owner: str
    reason: str
    evidence: Mapping[str, Any] | None


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery due to be sent, as read: its status and tries then, and its event."""

    pk: int
    status: str
    attempts: int
    event: TriggerEvent


def _event(row: RowMapping) -> TriggerEvent:
    return TriggerEvent(
        pk=row["pk"],
        feature=row["feature"],
        trigger=row["trigger"],
        scope=row["scope"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        at=row["at"],
        cycle_at=row["cycle_at"],
        owner=row["owner"],
        reason=row["reason"],
        evidence=row["evidence"],
    )


def _of_features(features: Sequence[str], feature: str | None) -> ColumnElement[bool]:
    """Events of the webhook's `features` (empty: all), and of `feature` when given."""
    conditions: list[ColumnElement[bool]] = []
    if features:
        conditions.append(events.c.feature.in_(features))
    if feature is not None:
        conditions.append(events.c.feature == feature)
    return and_(*conditions) if conditions else literal(True)


def enqueue(
    conn: Connection,
    sink: str,
    features: Sequence[str],
    feature: str | None,
    skip_before: datetime,
    now: datetime,
) -> list[TriggerEvent]:
    """One delivery row per event the webhook `sink` has none for: `pending`, or `skipped` when
    the event is older than `skip_before`; the skipped events, by pk.

    One INSERT ... SELECT ... ON CONFLICT DO NOTHING: the unique (event_pk, sink) constraint
    makes the row the one delivery even when two notifiers run at once."""
    status = case((events.c.at < skip_before, literal("skipped")), else_=literal("pending"))
    delivered = exists().where(deliveries.c.event_pk == events.c.pk, deliveries.c.sink == sink)
    source = select(events.c.pk, literal(sink), events.c.feature, status, literal(0), literal(now)).where(
        ~delivered, _of_features(features, feature)
    )
    columns = ["event_pk", "sink", "feature", "status", "attempts", "created_at"]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(deliveries)
        .from_select(columns, source)
        .on_conflict_do_nothing(index_elements=[deliveries.c.event_pk, deliveries.c.sink])
        .returning(deliveries.c.event_pk, deliveries.c.status)
    )
    skipped = [int(row.event_pk) for row in conn.execute(statement) if row.status == "skipped"]
    if not skipped:
        return []
    found = conn.execute(select(events).where(events.c.pk.in_(skipped))).mappings()
    return sorted((_event(row) for row in found), key=lambda event: event.pk)


def due(
    conn: Connection,
    sink: str,
    features: Sequence[str],
    feature: str | None,
    now: datetime,
    stale_after: timedelta,
) -> list[PendingDelivery]:
    """The webhook's deliveries to send now, by event: pending ones, waiting ones whose next
    round is due, and claims older than `stale_after` (a notifier died while sending)."""
    is_due = or_(
        deliveries.c.status == "pending",
        and_(deliveries.c.status == "waiting", deliveries.c.next_attempt_at <= now),
        # a claim from before migration 0007 has no time
        and_(
            deliveries.c.status == "sending",
            or_(deliveries.c.claimed_at.is_(None), deliveries.c.claimed_at <= now - stale_after),
        ),
    )
    query = (
        select(
            deliveries.c.pk.label("delivery_pk"),
            deliveries.c.status.label("delivery_status"),
            deliveries.c.attempts.label("delivery_attempts"),
            events,
        )
        .join(events, events.c.pk == deliveries.c.event_pk)
        .where(deliveries.c.sink == sink, is_due, _of_features(features, feature))
        .order_by(events.c.pk)
    )
    return [
        PendingDelivery(
            row["delivery_pk"], row["delivery_status"], int(row["delivery_attempts"]), _event(row)
        )
        for row in conn.execute(query).mappings()
    ]


def claim(conn: Connection, delivery: PendingDelivery, now: datetime) -> bool:
    """Take the delivery to send, unless another notifier changed it since it was read."""
    claimed = conn.execute(
        update(deliveries)
        .where(
            deliveries.c.pk == delivery.pk,
            deliveries.c.status == delivery.status,
            deliveries.c.attempts == delivery.attempts,
        )
        .values(status="sending", claimed_at=now, next_attempt_at=None)
    )
    return claimed.rowcount == 1


def record(conn: Connection, delivery_pk: int, values: Mapping[str, Any]) -> None:
    """Record a delivery's tries: `status`, `attempts`, `last_error`, `delivered_at`, `next_attempt_at`."""
    conn.execute(update(deliveries).where(deliveries.c.pk == delivery_pk).values(**values))
