"""Writing logged outputs and labels: idempotent, and a batch is stored whole or not at all.

Each function runs inside the caller's transaction, so the caller decides what "a batch" is:
one HTTP request, or one whole JSONL file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import InputError
from monitor.records import LabelRecord, OutputRecord
from monitor.store.tables import features, labels, outputs

LOOKUP_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit


@dataclass(frozen=True)
class WriteCounts:
    stored: int = 0
    duplicates: int = 0
    replaced: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            self.stored + other.stored, self.duplicates + other.duplicates, self.replaced + other.replaced
        )


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _existing_output_ids(conn: Connection, feature: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(outputs.c.output_id).where(outputs.c.feature == feature, outputs.c.output_id.in_(chunk))
        )
        found.update(row[0] for row in rows)
    return found


def insert_outputs(conn: Connection, records: Sequence[OutputRecord], now: datetime) -> WriteCounts:
    """Store the records not stored yet; an id already there (or twice in the batch) is a duplicate."""
    by_feature: dict[str, dict[str, OutputRecord]] = {}
    in_batch_duplicates = 0
    for record in records:
        group = by_feature.setdefault(record.feature, {})
        if record.id in group:
            in_batch_duplicates += 1
            continue
        group[record.id] = record
    counts = WriteCounts(duplicates=in_batch_duplicates)
    for feature, group in by_feature.items():
        existing = _existing_output_ids(conn, feature, list(group))
        rows: list[dict[str, Any]] = [
            {
                "feature": r.feature,
                "output_id": r.id,
                "ts": r.ts,
                "input": r.input,
                "output": r.output,
                "input_length": r.input_length,
                "output_length": r.output_length,
                "model_version": r.model_version,
                "config_version": r.config_version,
                "segment": r.segment,
                "signals": r.signals,
                "user_action": r.user_action,
                "metadata": r.metadata,
                "ingested_at": now,
            }
            for r in group.values()
            if r.id not in existing
        ]
        stored = 0
        if rows:
            statement = _insert(conn, outputs).on_conflict_do_nothing(
                index_elements=[outputs.c.feature, outputs.c.output_id]
            )
            result = conn.execute(statement, rows)
            stored = result.rowcount if result.rowcount >= 0 else len(rows)
            _count_outputs(conn, feature, rows, stored, now)
        counts = counts + WriteCounts(stored=stored, duplicates=len(group) - stored)
    return counts


def _count_outputs(
    conn: Connection, feature: str, rows: list[dict[str, Any]], stored: int, now: datetime
) -> None:
    first = min(row["ts"] for row in rows)
    last = max(row["ts"] for row in rows)
    ensure_feature(conn, feature, now)
    current = conn.execute(
        select(features.c.first_output_ts, features.c.last_output_ts).where(features.c.name == feature)
    ).one()
    conn.execute(
        update(features)
        .where(features.c.name == feature)
        .values(
            outputs_total=features.c.outputs_total + stored,
            first_output_ts=first if current[0] is None or first < current[0] else current[0],
            last_output_ts=last if current[1] is None or last > current[1] else current[1],
            last_ingest_at=now,
        )
    )


def ensure_feature(conn: Connection, feature: str, now: datetime) -> None:
    """Make sure the feature has its row (mode normal until a cycle or an override says otherwise)."""
    conn.execute(
        _insert(conn, features)
        .values(name=feature, mode="normal", mode_reason="", mode_since=now, outputs_total=0)
        .on_conflict_do_nothing(index_elements=[features.c.name])
    )


def missing_outputs(conn: Connection, records: Sequence[LabelRecord]) -> list[int]:
    """Indices of the labels whose output is not stored (a label needs its output)."""
    wanted = sorted({(r.feature, r.output_id) for r in records})
    known: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(outputs.c.feature, outputs.c.output_id).where(
                tuple_(outputs.c.feature, outputs.c.output_id).in_(chunk)
            )
        )
        known.update((row[0], row[1]) for row in rows)
    return [i for i, r in enumerate(records) if (r.feature, r.output_id) not in known]


def insert_labels(conn: Connection, records: Sequence[LabelRecord], now: datetime) -> WriteCounts:
    """Store labels; a later label from the same source for the same output replaces the earlier.

    Raises InputError naming the record's index when its output is not stored: nothing of the
    batch is written then (the caller's transaction rolls back).
    """
    missing = missing_outputs(conn, records)
    if missing:
        record = records[missing[0]]
        raise InputError(
            f"no stored output {record.output_id!r} in feature {record.feature!r}",
            line=missing[0],
            field="output_id",
        )
    latest: dict[tuple[str, str, str], LabelRecord] = {}
    for record in records:
        latest[(record.feature, record.output_id, record.source)] = record
    keys = list(latest)
    existing: set[tuple[str, str, str]] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(labels.c.feature, labels.c.output_id, labels.c.source).where(
                tuple_(labels.c.feature, labels.c.output_id, labels.c.source).in_(chunk)
            )
        )
        existing.update((row[0], row[1], row[2]) for row in rows)
    rows_to_write = [
        {
            "feature": r.feature,
            "output_id": r.output_id,
            "source": r.source,
            "source_kind": r.source_kind,
            "verdict": r.verdict,
            "score": r.score,
            "reason": r.reason,
            "ts": r.ts or now,
            "received_at": now,
        }
        for r in latest.values()
    ]
    if rows_to_write:
        statement = _insert(conn, labels)
        statement = statement.on_conflict_do_update(
            index_elements=[labels.c.feature, labels.c.output_id, labels.c.source],
            set_={
                name: statement.excluded[name]
                for name in ("verdict", "score", "reason", "ts", "received_at", "source_kind")
            },
        )
        conn.execute(statement, rows_to_write)
    replaced = len(existing) + (len(records) - len(latest))
    return WriteCounts(stored=len(latest) - len(existing), replaced=replaced)
