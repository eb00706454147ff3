"""Queries the weekly cycle runs: its window, its sample, its results, triggers and baselines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from monitor.store.tables import (
    baselines,
    cycles,
    features,
    labels,
    mode_overrides,
    outputs,
    samples,
    trigger_events,
    trigger_states,
)


@dataclass(frozen=True)
class SampleCandidate:
    output_id: str
    segment: Mapping[str, str]
    signals: Mapping[str, float]


@dataclass(frozen=True)
class SampledOutput:
    output_id: str
    stratum: str
    inclusion_prob: float
    segment: Mapping[str, str]
    verdicts: Mapping[str, str]
    """source -> verdict."""
    user_action: str | None = None


def count_window(conn: Connection, feature: str, start: datetime, end: datetime) -> int:
    query = select(func.count()).where(
        outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end
    )
    return int(conn.execute(query).scalar_one())


def unreviewed_in_window(
    conn: Connection, feature: str, start: datetime, end: datetime
) -> list[SampleCandidate]:
    """Outputs of the window never drawn for review before, in a stable order."""
    query = (
        select(outputs.c.output_id, outputs.c.segment, outputs.c.signals)
        .select_from(
            outputs.outerjoin(
                samples,
                and_(samples.c.feature == outputs.c.feature, samples.c.output_id == outputs.c.output_id),
            )
        )
        .where(
            outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end, samples.c.pk.is_(None)
        )
        .order_by(outputs.c.pk)
    )
    return [  # unpacked rather than looked up by name: a window can hold BIG_WINDOW candidates
        SampleCandidate(output_id, segment or {}, signals or {})
        for output_id, segment, signals in conn.execute(query)
    ]


def insert_samples(
    conn: Connection, feature: str, cycle_at: datetime, drawn: Iterable[Mapping[str, Any]], now: datetime
) -> None:
    rows = [{"feature": feature, "cycle_at": cycle_at, "drawn_at": now, **item} for item in drawn]
    if rows:
        conn.execute(insert(samples), rows)


def sample_of(conn: Connection, feature: str, cycle_at: datetime) -> list[SampledOutput]:
    """A cycle's sample with every verdict each output has."""
    query = (
        select(
            samples.c.output_id,
            samples.c.stratum,
            samples.c.inclusion_prob,
            outputs.c.segment,
            outputs.c.user_action,
        )
        .join(
            outputs, and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id)
        )
        .where(samples.c.feature == feature, samples.c.cycle_at == cycle_at)
        .order_by(samples.c.pk)
    )
    drawn = list(conn.execute(query))
    verdicts: dict[str, dict[str, str]] = {}
    label_query = (
        select(labels.c.output_id, labels.c.source, labels.c.verdict)
        .join(samples, and_(samples.c.feature == labels.c.feature, samples.c.output_id == labels.c.output_id))
        .where(samples.c.feature == feature, samples.c.cycle_at == cycle_at)
    )
    for output_id, source, verdict in conn.execute(label_query):
        verdicts.setdefault(output_id, {})[source] = verdict
    return [
        SampledOutput(
            row.output_id,
            row.stratum,
            row.inclusion_prob,
            row.segment or {},
            verdicts.get(row.output_id, {}),
            row.user_action,
        )
        for row in drawn
    ]


def window_records(
    conn: Connection, feature: str, start: datetime, end: datetime, chunk: int = 20_000
) -> Iterator[dict[str, Any]]:
    """The window's outputs as the drift code reads them (lengths stand in for the texts)."""
    query = (
        select(
            outputs.c.input_length,
            outputs.c.output_length,
            outputs.c.segment,
            outputs.c.signals,
            outputs.c.user_action,
            outputs.c.model_version,
            outputs.c.config_version,
        )
        .where(outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
        .execution_options(yield_per=chunk)
    )
    rows = conn.execute(query)
    for input_length, output_length, segment, signals, user_action, model_version, config_version in rows:
        yield {  # unpacked rather than looked up by name: this runs for every output of the window
            "input_length": input_length,
            "output_length": output_length,
            "segment": segment,
            "signals": signals,
            "user_action": user_action,
            "model_version": model_version,
            "config_version": config_version,
        }


def window_versions(
    conn: Connection, feature: str, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """How many outputs of the window each model and config version produced."""
    result: dict[str, dict[str, int]] = {"model_version": {}, "config_version": {}}
    for column in ("model_version", "config_version"):
        col = outputs.c[column]
        query = (
            select(col, func.count())
            .where(outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
            .group_by(col)
        )
        for value, count in conn.execute(query):
            if value is not None:
                result[column][value] = int(count)
    return result


def labels_received(
    conn: Connection, feature: str, after: datetime | None, until: datetime, source_kind: str | None = None
) -> int:
    query = select(func.count()).where(labels.c.feature == feature, labels.c.received_at <= until)
    if after is not None:
        query = query.where(labels.c.received_at > after)
    if source_kind is not None:
        query = query.where(labels.c.source_kind == source_kind)
    return int(conn.execute(query).scalar_one())


def cycles_with_new_labels(conn: Connection, feature: str, after: datetime) -> list[datetime]:
    """Earlier cycles whose sample got labels after `after` (their results must be restated)."""
    query = (
        select(samples.c.cycle_at)
        .distinct()
        .join(labels, and_(labels.c.feature == samples.c.feature, labels.c.output_id == samples.c.output_id))
        .where(samples.c.feature == feature, labels.c.received_at > after)
    )
    return sorted(conn.execute(query).scalars())


def running_cycles(conn: Connection) -> set[tuple[str, datetime]]:
    """(feature, scheduled time) of every cycle started and not finished (running, or cut short)."""
    query = select(cycles.c.feature, cycles.c.at).where(cycles.c.status == "running")
    return {(row.feature, row.at) for row in conn.execute(query)}


def cycle_row(conn: Connection, feature: str, at: datetime) -> dict[str, Any] | None:
    row = (
        conn.execute(select(cycles).where(cycles.c.feature == feature, cycles.c.at == at)).mappings().first()
    )
    return dict(row) if row else None


def cycle_rows(conn: Connection, feature: str, until: datetime | None = None) -> list[dict[str, Any]]:
    query = select(cycles).where(cycles.c.feature == feature, cycles.c.status == "done").order_by(cycles.c.at)
    if until is not None:
        query = query.where(cycles.c.at <= until)
    return [dict(row) for row in conn.execute(query).mappings()]


def start_cycle(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(cycles).values(**values))


def finish_cycle(conn: Connection, feature: str, at: datetime, values: Mapping[str, Any]) -> None:
    conn.execute(update(cycles).where(cycles.c.feature == feature, cycles.c.at == at).values(**values))


def restate_cycle(
    conn: Connection, feature: str, at: datetime, values: Mapping[str, Any], now: datetime
) -> None:
    conn.execute(
        update(cycles)
        .where(cycles.c.feature == feature, cycles.c.at == at)
        .values(**values, restatements=cycles.c.restatements + 1, restated_at=now)
    )


def active_baseline(conn: Connection, feature: str) -> dict[str, Any] | None:
    query = (
        select(baselines)
        .where(baselines.c.feature == feature, baselines.c.status == "active")
        .order_by(baselines.c.version.desc())
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def baseline_history(conn: Connection, feature: str) -> list[dict[str, Any]]:
    query = select(baselines).where(baselines.c.feature == feature).order_by(baselines.c.version)
    return [dict(row) for row in conn.execute(query).mappings()]


def add_baseline(conn: Connection, values: Mapping[str, Any]) -> int:
    """Store a baseline as the next version; an active one supersedes the previous active one."""
    feature = values["feature"]
    latest = conn.execute(
        select(func.max(baselines.c.version)).where(baselines.c.feature == feature)
    ).scalar()
    version = int(latest or 0) + 1
    if values["status"] == "active":
        conn.execute(
            update(baselines)
            .where(baselines.c.feature == feature, baselines.c.status == "active")
            .values(status="superseded")
        )
    if values["status"] == "proposed":
        conn.execute(
            delete(baselines).where(baselines.c.feature == feature, baselines.c.status == "proposed")
        )
    conn.execute(insert(baselines).values(**values, version=version))
    return version


def trigger_state_rows(conn: Connection, feature: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(select(trigger_states).where(trigger_states.c.feature == feature)).mappings()
    ]


def save_trigger_states(conn: Connection, feature: str, rows: Sequence[Mapping[str, Any]]) -> None:
    conn.execute(delete(trigger_states).where(trigger_states.c.feature == feature))
    if rows:
        conn.execute(insert(trigger_states), [{"feature": feature, **row} for row in rows])


def add_trigger_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(trigger_events), list(rows))


def trigger_event_rows(conn: Connection, feature: str) -> list[dict[str, Any]]:
    query = select(trigger_events).where(trigger_events.c.feature == feature).order_by(trigger_events.c.pk)
    return [dict(r) for r in conn.execute(query).mappings()]


@dataclass(frozen=True)
class OverrideRow:
    """A row of `mode_overrides`: a mode a person set by hand."""

    mode: str
    reason: str
    until: datetime | None
    set_at: datetime
    set_by: str
    cleared_at: datetime | None


@dataclass(frozen=True)
class TriggerStateRow:
    """A row of `trigger_states`: where a trigger of the feature stands after the latest cycle."""

    trigger: str
    scope: str
    state: str
    since: datetime
    reason: str
    evidence: Mapping[str, Any]


def active_override(conn: Connection, feature: str, now: datetime) -> OverrideRow | None:
    """The override in force at `now`: the latest one set and not cleared, until its `until` passes."""
    query = (
        select(
            mode_overrides.c.mode,
            mode_overrides.c.reason,
            mode_overrides.c.until,
            mode_overrides.c.set_at,
            mode_overrides.c.set_by,
            mode_overrides.c.cleared_at,
        )
        .where(
            mode_overrides.c.feature == feature,
            mode_overrides.c.cleared_at.is_(None),
            mode_overrides.c.set_at <= now,
        )
        .order_by(mode_overrides.c.set_at.desc(), mode_overrides.c.pk.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    if row is None or (row.until is not None and row.until <= now):
        return None
    return OverrideRow(row.mode, row.reason, row.until, row.set_at, row.set_by, row.cleared_at)


def set_feature_mode(
    conn: Connection, feature: str, mode: str, reason: str, now: datetime, *, by_override: bool = False
) -> None:
    """Store the feature's mode; `by_override` says an override set it (it holds while that lasts)."""
    current = conn.execute(select(features.c.mode).where(features.c.name == feature)).scalar()
    values: dict[str, Any] = {"mode": mode, "mode_reason": reason, "mode_by_override": by_override}
    if current != mode:
        values["mode_since"] = now
    conn.execute(update(features).where(features.c.name == feature).values(**values))


def trigger_states_of(conn: Connection, feature: str) -> list[TriggerStateRow]:
    """The feature's trigger states, as typed rows."""
    c = trigger_states.c
    query = select(c.trigger, c.scope, c.state, c.since, c.reason, c.evidence).where(c.feature == feature)
    return [
        TriggerStateRow(row.trigger, row.scope, row.state, row.since, row.reason, row.evidence or {})
        for row in conn.execute(query)
    ]


def feature_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(features.c.name).order_by(features.c.name)).scalars())


def feature_row(conn: Connection, feature: str) -> dict[str, Any] | None:
    row = conn.execute(select(features).where(features.c.name == feature)).mappings().first()
    return dict(row) if row else None
