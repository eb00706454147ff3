"""The OTLP paths' SQL: completing outputs told in parts, finding an id's feature, the verdicts to
export with their trace and span ids.

A span and the log records of its prompt and completion may arrive in different requests, in
either order: the first part stores the output, later parts fill what it left empty (never
overwriting what is stored). The trace and span ids are kept in the output's
`metadata.otel` (`trace_id`, `span_id`), so a verdict can be sent back beside its span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select, update

from monitor.records import OutputRecord
from monitor.store.tables import cycles, labels, outputs
from monitor.store.writes import chunked

__all__ = ["OtelVerdict", "complete_outputs", "features_of", "otel_verdicts", "previous_cycle_end"]

_PLAIN = ("input", "output", "model_version", "config_version", "user_action")
_MERGED = ("segment", "signals", "metadata")


def _stored(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    ids_by_feature: dict[str, list[str]] = {}
    for feature, output_id in keys:
        ids_by_feature.setdefault(feature, []).append(output_id)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    columns = [outputs.c.pk, outputs.c.output_id, *(outputs.c[n] for n in _PLAIN + _MERGED)]
    for feature, ids in ids_by_feature.items():  # one column's IN list: see writes.missing_outputs
        for chunk in chunked(ids):
            query = select(*columns).where(outputs.c.feature == feature, outputs.c.output_id.in_(chunk))
            for row in conn.execute(query).mappings():
                found[(feature, row["output_id"])] = dict(row)
    return found


def _filled(row: dict[str, Any], record: OutputRecord) -> dict[str, Any]:
    """The columns the stored row leaves empty that the record tells (merged dicts: stored wins)."""
    values: dict[str, Any] = {}
    for name in _PLAIN:
        told = getattr(record, name)
        if row[name] is None and told is not None:
            values[name] = told
    for name in _MERGED:
        told = getattr(record, name)
        if told:
            merged = {**told, **(row[name] or {})}
            if merged != (row[name] or {}):
                values[name] = merged
    if "input" in values:
        values["input_length"] = record.input_length
    if "output" in values:
        values["output_length"] = record.output_length
    return values


def complete_outputs(conn: Connection, records: Sequence[OutputRecord]) -> set[tuple[str, str]]:
    """Fill the empty parts of the records' stored outputs; the (feature, id) of those stored.

    The records not returned are new: the caller stores them with `insert_outputs`.
    """
    stored = _stored(conn, sorted({(r.feature, r.id) for r in records}))
    for record in records:
        row = stored.get((record.feature, record.id))
        if row is None:
            continue
        values = _filled(row, record)
        if values:
            conn.execute(update(outputs).where(outputs.c.pk == row["pk"]).values(**values))
            row.update(values)
    return set(stored)


def features_of(conn: Connection, output_ids: Sequence[str]) -> dict[str, list[str]]:
    """The features holding each of these output ids (an OTLP id names a span, not a feature)."""
    found: dict[str, list[str]] = {}
    unique = sorted(set(output_ids))
    for chunk in chunked(unique):
        rows = conn.execute(
            select(outputs.c.output_id, outputs.c.feature).where(outputs.c.output_id.in_(chunk))
        )
        for output_id, feature in rows:
            found.setdefault(output_id, []).append(feature)
    return found


@dataclass(frozen=True)
class OtelVerdict:
    """A label on an output that came in over OTLP, with the span it belongs to."""

    feature: str
    output_id: str
    trace_id: str
    span_id: str
    source: str
    verdict: str
    score: float | None
    reason: str | None
    ts: datetime


def previous_cycle_end(conn: Connection, feature: str, at: datetime) -> datetime | None:
    """When the feature's last finished cycle before `at` finished (None: this is the first)."""
    return conn.execute(
        select(cycles.c.finished_at)
        .where(cycles.c.feature == feature, cycles.c.at < at, cycles.c.finished_at.is_not(None))
        .order_by(cycles.c.at.desc())
        .limit(1)
    ).scalar()


def _ids(metadata: Any) -> tuple[str, str] | None:
    otel = metadata.get("otel") if isinstance(metadata, dict) else None
    if not isinstance(otel, dict):
        return None
    trace_id, span_id = otel.get("trace_id"), otel.get("span_id")
    if isinstance(trace_id, str) and isinstance(span_id, str):
        return trace_id, span_id
    return None


def otel_verdicts(
    conn: Connection, feature: str, since: datetime | None, until: datetime
) -> list[OtelVerdict]:
    """The feature's labels received in (since, until] on outputs that carry trace and span ids."""
    window = labels.c.received_at <= until
    if since is not None:
        window = and_(window, labels.c.received_at > since)
    rows = conn.execute(
        select(
            labels.c.output_id,
            labels.c.source,
            labels.c.verdict,
            labels.c.score,
            labels.c.reason,
            labels.c.ts,
            outputs.c.metadata,
        )
        .select_from(
            labels.join(
                outputs,
                and_(outputs.c.feature == labels.c.feature, outputs.c.output_id == labels.c.output_id),
            )
        )
        .where(labels.c.feature == feature, window)
        .order_by(labels.c.received_at, labels.c.pk)
    ).mappings()
    verdicts: list[OtelVerdict] = []
    for row in rows:
        ids = _ids(row["metadata"])
        if ids is None:
            continue
        verdicts.append(
            OtelVerdict(
                feature=feature,
                output_id=row["output_id"],
                trace_id=ids[0],
                span_id=ids[1],
                source=row["source"],
                verdict=row["verdict"],
                score=row["score"],
                reason=row["reason"],
                ts=row["ts"],
            )
        )
    return verdicts
