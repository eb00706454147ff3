"""Webhook deliveries, on both stores: one row per (event, webhook), too old ones skipped, what
is due, and a claim only one notifier wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from monitor.store import notification_queries as nq
from monitor.store.tables import trigger_events

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def add_events(engine: Engine) -> None:
    rows = [
        {
            "feature": feature,
            "trigger": "quality",
            "scope": "all",
            "from_state": "ok",
            "to_state": "firing",
            "at": at,
            "cycle_at": at,
            "owner": "team",
            "reason": "dropped",
            "evidence": {"n": 1},
        }
        for feature, at in (("support", T0 - timedelta(days=3)), ("support", T0), ("search", T0))
    ]
    with engine.begin() as conn:
        conn.execute(insert(trigger_events), rows)


def test_enqueue_once_per_event_and_webhook_skipping_old_ones(engine: Engine) -> None:
    add_events(engine)
    with engine.begin() as conn:
        skipped = nq.enqueue(conn, "ops", ("support",), None, T0 - timedelta(days=1), T0)
        assert [(e.feature, e.at, e.evidence) for e in skipped] == [
            ("support", T0 - timedelta(days=3), {"n": 1})
        ]
        assert nq.enqueue(conn, "ops", ("support",), None, T0 - timedelta(days=1), T0) == []  # once
        assert nq.enqueue(conn, "all", (), "search", T0 - timedelta(days=1), T0) == []
        due = nq.due(conn, "ops", ("support",), None, T0, timedelta(hours=1))
        assert [(d.status, d.attempts, d.event.feature, d.event.at) for d in due] == [
            ("pending", 0, "support", T0)
        ]
        assert [d.event.feature for d in nq.due(conn, "all", (), None, T0, timedelta(hours=1))] == ["search"]


def test_a_claim_is_won_once_and_a_stale_one_is_due_again(engine: Engine) -> None:
    add_events(engine)
    with engine.begin() as conn:
        nq.enqueue(conn, "ops", (), "search", T0 - timedelta(days=1), T0)
        [delivery] = nq.due(conn, "ops", (), None, T0, timedelta(hours=1))
        assert nq.claim(conn, delivery, T0)
        assert not nq.claim(conn, delivery, T0)  # read before the claim: another notifier's copy
        assert nq.due(conn, "ops", (), None, T0 + timedelta(minutes=59), timedelta(hours=1)) == []
        [stale] = nq.due(conn, "ops", (), None, T0 + timedelta(hours=1), timedelta(hours=1))
        assert stale.status == "sending"
        nq.record(
            conn, stale.pk, {"status": "waiting", "attempts": 5, "next_attempt_at": T0 + timedelta(hours=2)}
        )
        assert nq.due(conn, "ops", (), None, T0 + timedelta(hours=1), timedelta(hours=1)) == []
        [waiting] = nq.due(conn, "ops", (), None, T0 + timedelta(hours=2), timedelta(hours=1))
        assert (waiting.status, waiting.attempts) == ("waiting", 5)
