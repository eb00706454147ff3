"""Queries behind what a person does to a feature by hand, and what `aiqm status` reads.

Baselines pinned or accepted by hand, mode overrides, and a feature's latest cycle. The
weekly cycle's own queries are in `cycle_queries`; these build on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from monitor.store import cycle_queries as q
from monitor.store.tables import baselines, cycles, mode_overrides, outputs, samples

OPEN = "proposed"


def sampled_in_range(conn: Connection, feature: str, start: datetime, end: datetime) -> list[q.SampledOutput]:
    """Every output drawn for review (by any cycle) whose `ts` lies in [start, end), with its
    verdicts, exactly as the cycle that drew it sees it."""
    query = (
        select(samples.c.cycle_at, samples.c.output_id)
        .join(
            outputs, and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id)
        )
        .where(samples.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
    )
    wanted: dict[datetime, set[str]] = {}
    for cycle_at, output_id in conn.execute(query):
        wanted.setdefault(cycle_at, set()).add(output_id)
    return [
        item
        for cycle_at in sorted(wanted)
        for item in q.sample_of(conn, feature, cycle_at)
        if item.output_id in wanted[cycle_at]
    ]


def baseline_row(conn: Connection, feature: str, version: int) -> dict[str, Any] | None:
    query = select(baselines).where(baselines.c.feature == feature, baselines.c.version == version)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def open_proposals(conn: Connection, feature: str) -> list[dict[str, Any]]:
    """Baselines proposed by a cycle (after a version change) that nobody accepted yet, oldest first."""
    query = (
        select(baselines)
        .where(baselines.c.feature == feature, baselines.c.status == OPEN)
        .order_by(baselines.c.version)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def close_proposals(conn: Connection, feature: str, status: str, accepted: int | None = None) -> None:
    """Mark the open proposals `status` (`dismissed`); the one numbered `accepted` becomes `accepted`."""
    query = update(baselines).where(baselines.c.feature == feature, baselines.c.status == OPEN)
    if accepted is not None:
        conn.execute(query.where(baselines.c.version == accepted).values(status="accepted"))
    conn.execute(query.values(status=status))


def last_cycle(conn: Connection, feature: str) -> dict[str, Any] | None:
    """The feature's latest finished cycle."""
    query = (
        select(cycles)
        .where(cycles.c.feature == feature, cycles.c.status == "done")
        .order_by(cycles.c.at.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def cycle_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per feature, how many cycles are in each status (`done`, `running`), and how many were restated."""
    query = select(
        cycles.c.feature, cycles.c.status, func.count(), func.coalesce(func.sum(cycles.c.restatements), 0)
    ).group_by(cycles.c.feature, cycles.c.status)
    result: dict[str, dict[str, int]] = {}
    for feature, status, count, restated in conn.execute(query):
        entry = result.setdefault(feature, {"done": 0, "running": 0, "restatements": 0})
        entry[status] = int(count)
        entry["restatements"] += int(restated)
    return result


def add_override(
    conn: Connection,
    feature: str,
    mode: str,
    reason: str,
    now: datetime,
    *,
    until: datetime | None = None,
    set_by: str = "",
) -> None:
    """Set the feature's mode by hand; it wins over every trigger until `until`, or until cleared."""
    conn.execute(
        insert(mode_overrides).values(
            feature=feature, mode=mode, reason=reason, until=until, set_at=now, set_by=set_by
        )
    )


def clear_overrides(conn: Connection, feature: str, now: datetime) -> int:
    """End every override of the feature; returns how many were in force."""
    result = conn.execute(
        update(mode_overrides)
        .where(mode_overrides.c.feature == feature, mode_overrides.c.cleared_at.is_(None))
        .values(cleared_at=now)
    )
    return int(result.rowcount)


def as_json(row: Mapping[str, Any] | None, *columns: str) -> dict[str, Any] | None:
    """The chosen columns of a row, with times as RFC 3339 text."""
    if row is None:
        return None
    return {c: row[c].isoformat() if isinstance(row[c], datetime) else row[c] for c in columns}
