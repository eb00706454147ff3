"""What a cycle's week cost, as the store records it: the window's outputs' signals and user
actions, the cycle's judge calls, and the reviewers' time on its sample; and the `budget`
events recorded for weeks over budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, select

from monitor.store.tables import judge_runs, labels, outputs, samples, trigger_events


class WindowOutput(NamedTuple):
    """What an output of the window says about its cost: its signals and what the user did."""

    signals: Mapping[str, Any] | None
    user_action: str | None


@dataclass(frozen=True)
class WeekSpending:
    """A cycle's week as its costs are added up from."""

    window: list[WindowOutput]
    judge_costs: list[float | None]
    """Every judge call of the cycle."""
    review_seconds: list[float | None]
    """Every human label of the cycle's sample."""


def week_spending(
    conn: Connection, feature: str, cycle_at: datetime, window_start: datetime, window_end: datetime
) -> WeekSpending:
    """The window's outputs, the cycle's judge calls and its sample's human labels."""
    window = conn.execute(
        select(outputs.c.signals, outputs.c.user_action).where(
            outputs.c.feature == feature,
            outputs.c.ts >= window_start,
            outputs.c.ts < window_end,
        )
    )
    outputs_of_window = [WindowOutput(row.signals, row.user_action) for row in window]
    judged = conn.execute(
        select(judge_runs.c.cost_usd).where(
            judge_runs.c.feature == feature, judge_runs.c.cycle_at == cycle_at
        )
    ).scalars()
    judge_costs = list(judged)
    reviewed = conn.execute(
        select(labels.c.review_seconds)
        .select_from(
            samples.join(
                labels,
                and_(labels.c.feature == samples.c.feature, labels.c.output_id == samples.c.output_id),
            )
        )
        .where(
            samples.c.feature == feature,
            samples.c.cycle_at == cycle_at,
            labels.c.source_kind == "human",
        )
    ).scalars()
    return WeekSpending(outputs_of_window, judge_costs, list(reviewed))


def has_event(conn: Connection, feature: str, trigger: str, cycle_at: datetime) -> bool:
    """Whether the cycle has an event of `trigger` already."""
    query = select(trigger_events.c.pk).where(
        trigger_events.c.feature == feature,
        trigger_events.c.trigger == trigger,
        trigger_events.c.cycle_at == cycle_at,
    )
    return conn.execute(query).first() is not None


def add_event(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record one trigger event (a row of `trigger_events`)."""
    conn.execute(trigger_events.insert().values(**values))
