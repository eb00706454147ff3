"""Writing logged outputs and labels: idempotent, and a batch is stored whole or not at all.

Each function runs inside the caller's transaction, so the caller decides what "a batch" is:
one HTTP request, or one whole JSONL file.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

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


# The outputs' columns in the order the fast path sends them (`ingested_at` comes last).
OUTPUT_COLUMNS = (
    "feature",
    "output_id",
    "ts",
    "input",
    "output",
    "input_length",
    "output_length",
    "model_version",
    "config_version",
    "segment",
    "signals",
    "user_action",
    "metadata",
)
_COLUMN_LIST = ", ".join(OUTPUT_COLUMNS)
_SQLITE_WIDTH = len(OUTPUT_COLUMNS) + 1  # with ingested_at
_SQLITE_ROWS_PER_STATEMENT = 500  # one step (GIL released) inserts this many; 7,000 variables
_PG_STAGE = "aiqm_outputs_stage"
_PG_CREATE_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_PG_STAGE} (
    feature text NOT NULL, output_id text NOT NULL, ts timestamptz NOT NULL,
    input jsonb, output jsonb, input_length integer, output_length integer,
    model_version text, config_version text, segment jsonb, signals jsonb, user_action text, metadata jsonb
) ON COMMIT DROP
"""
_PG_COPY = f"COPY {_PG_STAGE} ({_COLUMN_LIST}) FROM STDIN"
_PG_COPY_DIRECT = f"COPY outputs ({_COLUMN_LIST}, ingested_at) FROM STDIN"
_PG_MERGE = f"""
WITH stored AS (
    INSERT INTO outputs ({_COLUMN_LIST}, ingested_at)
    SELECT {_COLUMN_LIST}, %s FROM {_PG_STAGE}
    ON CONFLICT (feature, output_id) DO NOTHING
    RETURNING feature
)
SELECT feature, count(*) FROM stored GROUP BY feature
"""

OutputRow = tuple[Any, ...]


def _json(value: Any) -> str | None:
    """A JSON column's text: orjson when it can, the standard library for integers past 64 bits."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


def output_row(record: OutputRecord, ts: Callable[[datetime], Any] = lambda ts: ts) -> OutputRow:
    """One record as the values of OUTPUT_COLUMNS, JSON columns already serialized, `ts(record.ts)`."""
    source, result = record.input, record.output
    return (
        record.feature,
        record.id,
        ts(record.ts),
        _json(source),
        _json(result),
        len(source) if type(source) is str else record.input_length,
        len(result) if type(result) is str else record.output_length,
        record.model_version,
        record.config_version,
        _json(record.segment),
        _json(record.signals),
        record.user_action,
        _json(record.metadata),
    )


def sqlite_ts(ts: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime keeps: naive UTC, always with microseconds."""
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None:
            raise ValueError("naive datetime given to the store; every time here is aware UTC")
        ts = ts.astimezone(UTC)
    # Twice as quick as isoformat() on an aware datetime, and this runs for every output.
    return _SQLITE_TS % (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond)


_SQLITE_TS = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


@contextmanager
def bulk_writes(conn: Connection) -> Iterator[None]:
    """Settings for one big transaction on this connection, put back afterwards.

    SQLite: a 64 MB page cache instead of 2 MB, so the indexes' pages stay in memory instead of
    being spilled and read back while a large file goes in (an eighth less time for a million
    outputs). PostgreSQL needs nothing.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        try:
            conn.exec_driver_sql(f"PRAGMA cache_size = {int(previous or -2000)}")
        except SQLAlchemyError:  # the connection is broken anyway: let the pool replace it
            conn.invalidate()


BULK_CACHE_KIB = 65_536


def insert_outputs(conn: Connection, records: Sequence[OutputRecord], now: datetime) -> WriteCounts:
    """Store the records not stored yet; an id already there (or earlier in the batch) is a duplicate.

    The first of several records with the same (feature, id) wins, in the store and in the batch.
    Rows go to the driver directly (SQLite: executemany; PostgreSQL: COPY into a temporary
    table, then INSERT ... ON CONFLICT DO NOTHING), which is what makes a million-line file
    quick; the insert itself says how many rows were new, so duplicates are counted exactly
    without looking the ids up first.
    """
    if not records:
        return WriteCounts()
    first: dict[tuple[str, str], OutputRecord] = {}
    for record in records:
        first.setdefault((record.feature, record.id), record)
    unique = list(first.values())
    if conn.dialect.name == "postgresql":
        stored = _insert_outputs_postgresql(conn, unique, now)
    else:
        stored = _insert_outputs_sqlite(conn, unique, now)
    for feature, count in stored.items():
        if count:
            _count_outputs(conn, feature, count, now)
    total = sum(stored.values())
    return WriteCounts(stored=total, duplicates=len(records) - total)


def _insert_outputs_sqlite(
    conn: Connection, records: Sequence[OutputRecord], now: datetime
) -> dict[str, int]:
    """Multi-row INSERT ... ON CONFLICT DO NOTHING; each statement's rowcount is its new rows.

    Hundreds of rows per statement rather than executemany's one: SQLite then works for
    milliseconds at a time without Python's lock, so the reading thread can parse meanwhile.
    """
    ingested_at = sqlite_ts(now)
    values_of: dict[str, list[Any]] = {}  # one flat list of values per feature
    for record in records:
        values = values_of.setdefault(record.feature, [])
        values += output_row(record, sqlite_ts)
        values.append(ingested_at)
    limit = conn.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
    step = min(_SQLITE_ROWS_PER_STATEMENT, limit // _SQLITE_WIDTH) * _SQLITE_WIDTH
    stored: dict[str, int] = {}
    for feature, values in values_of.items():
        stored[feature] = 0
        for start in range(0, len(values), step):
            chunk = tuple(values[start : start + step])
            result = conn.exec_driver_sql(_sqlite_insert(len(chunk) // _SQLITE_WIDTH), chunk)
            stored[feature] += result.rowcount
    return stored


@functools.cache
def _sqlite_insert(rows: int) -> str:
    row = f"({', '.join('?' * _SQLITE_WIDTH)})"
    return (
        f"INSERT INTO outputs ({_COLUMN_LIST}, ingested_at) VALUES {', '.join([row] * rows)} "
        "ON CONFLICT (feature, output_id) DO NOTHING"
    )


def _insert_outputs_postgresql(
    conn: Connection, records: Sequence[OutputRecord], now: datetime
) -> dict[str, int]:
    """COPY straight into `outputs` when none of the batch looks stored; else stage and merge.

    The direct COPY (about a third cheaper for the server) runs under a savepoint: if an id
    turns out to be stored after all, it is undone and the batch takes the merge path. The
    records are unique within the batch (the caller saw to that).
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    features_in_batch = Counter(record.feature for record in records)
    with driver.cursor() as cursor:
        if not _any_stored(cursor, (records[0], records[-1])):
            cursor.execute("SAVEPOINT aiqm_direct_copy")
            try:
                with cursor.copy(_PG_COPY_DIRECT) as copy:
                    for record in records:
                        copy.write_row((*output_row(record), now))
            except psycopg.errors.UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT aiqm_direct_copy")
            else:
                cursor.execute("RELEASE SAVEPOINT aiqm_direct_copy")
                return dict(features_in_batch)
        cursor.execute(_PG_CREATE_STAGE)
        with cursor.copy(_PG_COPY) as copy:
            for record in records:
                copy.write_row(output_row(record))
        cursor.execute(_PG_MERGE, (now,))
        stored = {str(feature): int(count) for feature, count in cursor.fetchall()}
        cursor.execute(f"TRUNCATE {_PG_STAGE}")
    return dict.fromkeys(features_in_batch, 0) | stored


def _any_stored(cursor: psycopg.Cursor[Any], records: Sequence[OutputRecord]) -> bool:
    """Whether any of these (a batch's first and last) is stored: a re-sent file shows at once."""
    keys = [(record.feature, record.id) for record in records]
    cursor.execute(
        "SELECT 1 FROM outputs WHERE (feature, output_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([feature for feature, _ in keys], [output_id for _, output_id in keys]),
    )
    return cursor.fetchone() is not None


def _count_outputs(conn: Connection, feature: str, stored: int, now: datetime) -> None:
    """Keep the feature's row in step: its total, first and last output times, last ingest."""
    ensure_feature(conn, feature, now)
    ts = select(outputs.c.ts).where(outputs.c.feature == feature)
    conn.execute(
        update(features)
        .where(features.c.name == feature)
        .values(
            outputs_total=features.c.outputs_total + stored,
            first_output_ts=ts.order_by(outputs.c.ts.asc()).limit(1).scalar_subquery(),
            last_output_ts=ts.order_by(outputs.c.ts.desc()).limit(1).scalar_subquery(),
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
    ids_by_feature: dict[str, set[str]] = {}
    for record in records:
        ids_by_feature.setdefault(record.feature, set()).add(record.output_id)
    known: set[tuple[str, str]] = set()
    for feature, ids in ids_by_feature.items():
        # One column's IN list per feature: PostgreSQL runs a row-value IN list of 500 pairs far
        # slower than `output_id = ANY(...)` (20,336 labels imported in 22 s before, 7.6 s after).
        for chunk in chunked(sorted(ids)):
            query = select(outputs.c.output_id).where(
                outputs.c.feature == feature, outputs.c.output_id.in_(chunk)
            )
            known.update((feature, output_id) for output_id in conn.scalars(query))
    return [i for i, r in enumerate(records) if (r.feature, r.output_id) not in known]


def chunked(ids: list[str]) -> Iterator[list[str]]:
    """The ids in lists of at most LOOKUP_CHUNK, one IN (...) query each."""
    for start in range(0, len(ids), LOOKUP_CHUNK):
        yield ids[start : start + LOOKUP_CHUNK]


def insert_labels(conn: Connection, records: Sequence[LabelRecord], now: datetime) -> WriteCounts:
    """Store labels; a later label from the same source for the same output replaces the earlier.

    Raises InputError naming the record's index when its output is not stored: nothing of the
    batch is written then (the caller's transaction rolls back).
    """
    _require_outputs(conn, records)
    latest, duplicates, replaced = _last_per_source(records)
    existing = _existing_labels(conn, list(latest))
    to_write: list[LabelRecord] = []
    for key, record in latest.items():
        stored_label = existing.get(key)
        if stored_label is None:
            to_write.append(record)
        elif _same_label(stored_label, record):
            duplicates += 1  # sent again unchanged: nothing to do (and received_at stays)
        else:
            replaced += 1
            to_write.append(record)
    _upsert_labels(conn, to_write, now)
    new = sum(1 for key in latest if key not in existing)
    return WriteCounts(stored=new, duplicates=duplicates, replaced=replaced)


def _require_outputs(conn: Connection, records: Sequence[LabelRecord]) -> None:
    """An InputError naming the first label whose output is not stored, if any."""
    missing = missing_outputs(conn, records)
    if missing:
        record = records[missing[0]]
        raise InputError(
            f"no stored output {record.output_id!r} in feature {record.feature!r}",
            line=missing[0],
            field="output_id",
        )


LabelKey = tuple[str, str, str]
"""(feature, output id, source): one label."""


def _last_per_source(records: Sequence[LabelRecord]) -> tuple[dict[LabelKey, LabelRecord], int, int]:
    """Within the batch, the last label of a source for an output wins: those labels, and how
    many earlier ones were duplicates of the next and how many were replaced by it."""
    latest: dict[LabelKey, LabelRecord] = {}
    duplicates = replaced = 0
    for record in records:
        key = (record.feature, record.output_id, record.source)
        earlier = latest.get(key)
        if earlier is not None:
            if _same_label(earlier, record):
                duplicates += 1
            else:
                replaced += 1
        latest[key] = record
    return latest, duplicates, replaced


def _upsert_labels(conn: Connection, records: Sequence[LabelRecord], now: datetime) -> None:
    """Insert the labels; one already stored for its (feature, output, source) is overwritten."""
    if not records:
        return
    statement = _insert(conn, labels)
    statement = statement.on_conflict_do_update(
        index_elements=[labels.c.feature, labels.c.output_id, labels.c.source],
        set_={
            name: statement.excluded[name]
            for name in ("verdict", "score", "reason", "ts", "received_at", "source_kind")
        },
    )
    conn.execute(
        statement,
        [
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
            for r in records
        ],
    )


def _same_label(old: LabelRecord, new: LabelRecord) -> bool:
    """The new label says nothing the old one did not (a label without a time matches any time)."""
    return (old.verdict, old.score, old.reason) == (new.verdict, new.score, new.reason) and (
        new.ts is None or new.ts == old.ts
    )


def _existing_labels(conn: Connection, keys: list[LabelKey]) -> dict[LabelKey, LabelRecord]:
    ids_by_source: dict[tuple[str, str], set[str]] = {}
    for feature, output_id, source in keys:
        ids_by_source.setdefault((feature, source), set()).add(output_id)
    found: dict[LabelKey, LabelRecord] = {}
    columns = (labels.c.output_id, labels.c.verdict, labels.c.score, labels.c.reason, labels.c.ts)
    for (feature, source), ids in ids_by_source.items():
        for chunk in chunked(sorted(ids)):
            rows = conn.execute(
                select(*columns).where(
                    labels.c.feature == feature, labels.c.source == source, labels.c.output_id.in_(chunk)
                )
            )
            for row in rows:
                found[(feature, row.output_id, source)] = LabelRecord(
                    output_id=row.output_id,
                    feature=feature,
                    source=source,
                    verdict=row.verdict,
                    score=row.score,
                    reason=row.reason,
                    ts=row.ts,
                )
    return found
