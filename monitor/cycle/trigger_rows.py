"""The triggers' side of a cycle in the store: the states read before deciding, and what the
decision writes (new states, their transitions as events, the feature's mode)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.cycle.result import Alert
from monitor.decide.triggers import Decision, TriggerState
from monitor.store import cycle_queries as q


def state_from_row(row: Mapping[str, Any]) -> TriggerState:
    return TriggerState(
        trigger=row["trigger"],
        scope=row["scope"],
        state=row["state"],
        since=row["since"],
        reason=row["reason"],
        evidence=row["evidence"],
        cooldown_left=int((row["detector"] or {}).get("cooldown_left", 0)),
    )


def previous_states(conn: Connection, feature: str) -> dict[tuple[str, str], TriggerState]:
    """Every trigger's state as the feature's last cycle left it, by (trigger, scope)."""
    return {(r["trigger"], r["scope"]): state_from_row(r) for r in q.trigger_state_rows(conn, feature)}


def alerts_of(decision: Decision) -> tuple[Alert, ...]:
    """The triggers the decision leaves pending or firing."""
    return tuple(
        Alert(s.trigger, s.scope, s.state, s.reason)
        for s in decision.states.values()
        if s.state in ("pending", "firing")
    )


def save_decision(conn: Connection, feature: str, at: datetime, now: datetime, decision: Decision) -> None:
    """Store the triggers' new states, each transition as an event, and the feature's mode."""
    q.save_trigger_states(
        conn,
        feature,
        [
            {
                "trigger": s.trigger,
                "scope": s.scope,
                "state": s.state,
                "since": s.since,
                "updated_at": now,
                "reason": s.reason,
                "evidence": dict(s.evidence),
                "detector": {"cooldown_left": s.cooldown_left},
            }
            for s in decision.states.values()
        ],
    )
    q.add_trigger_events(
        conn,
        [
            {
                "feature": feature,
                "trigger": t.trigger,
                "scope": t.scope,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "at": now,
                "cycle_at": at,
                "owner": t.owner,
                "reason": t.reason,
                "evidence": dict(t.evidence),
            }
            for t in decision.transitions
        ],
    )
    q.set_feature_mode(
        conn, feature, decision.mode, decision.mode_reason, now, by_override=decision.mode_by_override
    )
