"""Pull mode from the app's own table or view, in any database SQLAlchemy reaches.

A periodic incremental copy: each pass reads the rows after the stored watermark, ordered by
(cursor column, id column), in batches; every batch is stored with the watermark after it in
one transaction of the store, so a restart resumes exactly there. The cursor column is the
mapped ``ts`` unless `cursor` names another (an auto-increment key is best: a row inserted
later with an older cursor value than the watermark is not seen; with ``ts`` as the cursor,
late rows are missed). Only the mapped columns are read (a mapping to the contract's fields:
``id``, ``feature``, ``ts`` and optionally ``input``, ``output``, ``model_version``,
``config_version``, ``segment``, ``signals``, ``user_action``, ``metadata``); ``feature`` can be
a constant instead. Every row goes through the same validation as `aiqm ingest`; bad rows are
written with their reasons to a rejects file and reported. The watermarks table is created on
first use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    insert,
    or_,
    select,
    update,
)

from monitor.errors import InputError
from monitor.records import OUTPUT_FIELDS, BadLine, OutputRecord, validate_output
from monitor.store.engine import make_engine
from monitor.store.tables import UTCDateTime, utcnow
from monitor.store.writes import insert_outputs

watermark_metadata = MetaData()

pull_watermarks = Table(
    "pull_watermarks",
    watermark_metadata,
    Column("source", String(1000), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("last_id", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

JSON_FIELDS = {"input", "output", "segment", "signals", "metadata"}


@dataclass
class SqlPullSummary:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    bad_rows: list[BadLine] = field(default_factory=list)
    rejects_file: Path | None = None

    def describe(self, source: str) -> str:
        text = (
            f"{source}: {self.rows} rows read, {self.stored} outputs stored, "
            f"{self.duplicates} duplicate, {self.rejected} rejected"
        )
        if self.rejects_file is not None:
            text += f" (written to {self.rejects_file})"
        return text


def pull_sql(
    store: Engine,
    url: str,
    table: str,
    columns: Mapping[str, str],
    *,
    feature: str | None = None,
    cursor: str | None = None,
    batch: int = 5_000,
    now: Callable[[], datetime] = utcnow,
    rejects_dir: Path | None = None,
    prepare: Callable[[OutputRecord], OutputRecord] | None = None,
    source_engine: Engine | None = None,
) -> SqlPullSummary:
    """One pass: copy the source rows after the watermark into the store."""
    unknown = set(columns) - OUTPUT_FIELDS
    if unknown:
        raise InputError(f"not a field of an output: {sorted(unknown)[0]!r}", field="pull.sql.columns")
    for required in ("id", "ts"):
        if required not in columns:
            raise InputError("must be mapped", field=f"pull.sql.columns.{required}")
    if "feature" not in columns and not feature:
        raise InputError("map a feature column or give pull.sql.feature", field="pull.sql.columns.feature")
    engine = source_engine or make_engine(url)
    try:
        return _pull(store, engine, url, table, columns, feature, cursor, batch, now, rejects_dir, prepare)
    finally:
        if source_engine is None:
            engine.dispose()


def _pull(
    store: Engine,
    engine: Engine,
    url: str,
    table: str,
    columns: Mapping[str, str],
    feature: str | None,
    cursor: str | None,
    batch: int,
    now: Callable[[], datetime],
    rejects_dir: Path | None,
    prepare: Callable[[OutputRecord], OutputRecord] | None,
) -> SqlPullSummary:
    watermark_metadata.create_all(store, checkfirst=True)
    schema, _, name = table.rpartition(".")
    source_table = Table(name, MetaData(), autoload_with=engine, schema=schema or None)
    try:
        mapped = {key: source_table.c[column] for key, column in columns.items()}
        cursor_col = source_table.c[cursor] if cursor else mapped["ts"]
    except KeyError as exc:
        raise InputError(f"no column {exc.args[0]!r} in {table}", field="pull.sql.columns") from None
    id_col = mapped["id"]
    key = f"sql:{engine.url.render_as_string(hide_password=True)}/{table}"
    summary = SqlPullSummary()
    with store.connect() as conn:
        row = conn.execute(select(pull_watermarks).where(pull_watermarks.c.source == key)).first()
    mark: tuple[Any, str] | None = (_load(row.cursor), row.last_id) if row else None
    stored_mark = row is not None
    names = list(mapped)
    while True:
        query = select(cursor_col, *mapped.values()).order_by(cursor_col, _as_text(id_col)).limit(batch)
        if mark is not None:
            query = query.where(
                or_(cursor_col > mark[0], and_(cursor_col == mark[0], _as_text(id_col) > mark[1]))
            )
        with engine.connect() as source:
            rows = source.execute(query).all()
        if not rows:
            break
        records: list[OutputRecord] = []
        for number, values in enumerate(rows, start=summary.rows + 1):
            raw = {name: _value(name, value) for name, value in zip(names, values[1:], strict=True)}
            raw = {k: v for k, v in raw.items() if v is not None}
            if feature and "feature" not in raw:
                raw["feature"] = feature
            try:
                record = validate_output(raw)
            except InputError as exc:
                _reject(
                    summary,
                    BadLine(number, exc.field, exc.message, json.dumps(raw, default=str)),
                    rejects_dir,
                    table,
                )
                continue
            records.append(prepare(record) if prepare else record)
        summary.rows += len(rows)
        last = rows[-1]
        mark = (last[0], str(last[1 + names.index("id")]))
        with store.begin() as conn:
            if records:
                counts = insert_outputs(conn, records, now())
                summary.stored += counts.stored
                summary.duplicates += counts.duplicates
            saved = {"cursor": _dump(mark[0]), "last_id": mark[1], "updated_at": now()}
            if not stored_mark:
                conn.execute(insert(pull_watermarks).values(source=key, **saved))
                stored_mark = True
            else:
                conn.execute(update(pull_watermarks).where(pull_watermarks.c.source == key).values(**saved))
        if len(rows) < batch:
            break
    return summary


def _as_text(column: Any) -> Any:
    return cast(column, String)


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "ts":
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)
            return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return str(value)
    if name == "id":
        return str(value)
    if name in JSON_FIELDS and isinstance(value, str | bytes) and name != "input" and name != "output":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _dump(value: Any) -> str:
    if isinstance(value, datetime):
        return json.dumps({"datetime": value.isoformat()})
    if isinstance(value, Decimal):
        return json.dumps({"decimal": str(value)})
    return json.dumps({"value": value})


def _load(text: str) -> Any:
    data = json.loads(text)
    if "datetime" in data:
        return datetime.fromisoformat(data["datetime"])
    if "decimal" in data:
        return Decimal(data["decimal"])
    return data["value"]


def _reject(summary: SqlPullSummary, bad: BadLine, directory: Path | None, table: str) -> None:
    summary.rejected += 1
    if len(summary.bad_rows) < 50:
        summary.bad_rows.append(bad)
    target = (directory or Path.cwd()) / f"pull-sql.{table}.outputs.rejects.jsonl"
    with open(target, "a", encoding="utf-8") as handle:
        payload = {"row": bad.line, "field": bad.field, "error": bad.message, "text": bad.text}
        handle.write(json.dumps(payload, ensure_ascii=False) + "\n")
    summary.rejects_file = target
