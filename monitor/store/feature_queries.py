"""Queries behind what a person does to a feature by hand, and what `aiqm status` reads.

Baselines pinned or accepted by hand, mode overrides, the facts a feature's mode is resolved
from (`mode_rows`, for `monitor.decide.modes`), and a feature's latest cycle. The weekly
cycle's own queries are in `cycle_queries`; these build on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from monitor.store import cycle_queries as q
from monitor.store.tables import baselines, cycles, features, mode_overrides, outputs, samples

OPEN = "proposed"


@dataclass(frozen=True)
class StoredModeRow:
    """The mode columns of a feature's row: what the latest cycle or override wrote."""

    mode: str
    reason: str
    since: datetime
    by_override: bool


@dataclass(frozen=True)
class ModeRows:
    """What the store holds about a feature's mode at a moment (`monitor.decide.modes.ModeFacts`)."""

    stored: StoredModeRow | None
    """None when the store has no row for the feature (no outputs yet)."""
    override: q.OverrideRow | None = None
    """The override in force."""
    triggers: list[q.TriggerStateRow] = field(default_factory=list)
    override_ended_at: datetime | None = None
    """When the latest override stopped applying; read only when the stored mode is an override's."""
    has_cycle: bool = False


def mode_rows(conn: Connection, feature: str, now: datetime) -> ModeRows:
    """The facts the feature's mode at `now` is resolved from."""
    stored = stored_mode(conn, feature)
    if stored is None:
        return ModeRows(None)
    override = q.active_override(conn, feature, now)
    ended = override_ended_at(conn, feature, now) if override is None and stored.by_override else None
    return ModeRows(
        stored, override, q.trigger_states_of(conn, feature), ended, has_finished_cycle(conn, feature)
    )


def stored_mode(conn: Connection, feature: str) -> StoredModeRow | None:
    c = features.c
    query = select(c.mode, c.mode_reason, c.mode_since, c.mode_by_override).where(c.name == feature)
    row = conn.execute(query).first()
    return None if row is None else StoredModeRow(row[0], row[1] or "", row[2], bool(row[3]))


def override_ended_at(conn: Connection, feature: str, now: datetime) -> datetime | None:
    """When the feature's latest override stopped applying (cleared, or its `until` passed)."""
    query = (
        select(mode_overrides.c.until, mode_overrides.c.cleared_at)
        .where(mode_overrides.c.feature == feature, mode_overrides.c.set_at <= now)
        .order_by(mode_overrides.c.set_at.desc(), mode_overrides.c.pk.desc())
        .limit(1)
    )
    latest = conn.execute(query).first()
    if latest is None:
        return None
    ends = [moment for moment in latest if moment is not None and moment <= now]
    return min(ends) if ends else None


def has_finished_cycle(conn: Connection, feature: str) -> bool:
    query = select(cycles.c.pk).where(cycles.c.feature == feature, cycles.c.status == "done").limit(1)
    return conn.execute(query).first() is not None


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
