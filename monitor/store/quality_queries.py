"""What the quality page reads beyond `/metrics`' figures: each judge's calls and spend per cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from monitor.store.tables import judge_runs

__all__ = ["JudgeSpend", "judge_spend"]


@dataclass(frozen=True)
class JudgeSpend:
    """One judge's calls for one cycle: how many, how many gave no verdict, what they cost."""

    cycle_at: datetime
    judge: str
    calls: int
    errors: int
    cost_usd: float
    mean_latency_ms: float | None


def judge_spend(conn: Connection, feature: str, cycles: int) -> list[JudgeSpend]:
    """The feature's judge calls of its latest `cycles` cycles that called a judge, newest first."""
    c = judge_runs.c
    recent = (
        select(c.cycle_at)
        .where(c.feature == feature, c.cycle_at.is_not(None))
        .group_by(c.cycle_at)
        .order_by(c.cycle_at.desc())
        .limit(cycles)
        .subquery()
    )
    query = (
        select(
            c.cycle_at,
            c.judge,
            func.count().label("calls"),
            func.count(c.error).label("errors"),
            func.coalesce(func.sum(c.cost_usd), 0.0).label("cost_usd"),
            func.avg(c.latency_ms).label("mean_latency_ms"),
        )
        .where(c.feature == feature, c.cycle_at.in_(select(recent.c.cycle_at)))
        .group_by(c.cycle_at, c.judge)
        .order_by(c.cycle_at.desc(), c.judge)
    )
    return [
        JudgeSpend(
            cycle_at=row.cycle_at,
            judge=row.judge,
            calls=int(row.calls),
            errors=int(row.errors),
            cost_usd=float(row.cost_usd),
            mean_latency_ms=None if row.mean_latency_ms is None else float(row.mean_latency_ms),
        )
        for row in conn.execute(query)
    ]
