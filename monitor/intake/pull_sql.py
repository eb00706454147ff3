"""Pull mode from the app's own table or view, in any database SQLAlchemy reaches.

A periodic incremental copy: each pass reads the rows after the stored watermark, ordered by
(cursor column, id column), in batches; every batch is stored with the watermark after it in
one transaction of the store, so a restart resumes exactly there. The cursor column is the
mapped ``ts`` unless `cursor` names another. An auto-increment key is best; with a time as the
cursor, a row committed after the watermark passed its time (a slow transaction, a clock
behind) would be missed, so `lookback_seconds` makes each pass read that far before the
watermark again: what was copied already is a duplicate by id and stored once.

Only the mapped columns are read (a mapping to the contract's fields: ``id``, ``feature``,
``ts`` and optionally ``input``, ``output``, ``model_version``, ``config_version``,
``segment``, ``signals``, ``user_action``, ``metadata``); ``feature`` can be a constant instead.

The daemon copies only what it samples and what its aggregates need: with `copy_text:
sampled` (the default) a row is stored without its input and output text, only their lengths
(drift compares them); when a cycle samples outputs, `SampledText` reads those outputs' text
from the app's table by id (indexed lookups, never the window) and stores it for the judges and
the review page. `copy_text: all` copies the text of every row.
Every row goes through the same validation as `aiqm ingest`; bad rows are written with their
reasons to a rejects file and reported. Watermarks are kept in the store's `pull_watermarks`
table (migration 0005).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from monitor.config import Settings, SqlPullSettings
from monitor.errors import InputError
from monitor.formats import format_ts
from monitor.records import OUTPUT_FIELDS, BadLine, OutputRecord, validate_output
from monitor.store import pull_queries, source_queries, text_queries
from monitor.store.engine import make_engine
from monitor.store.pull_queries import Watermark
from monitor.store.source_queries import Mark, SourceRow, SourceTable
from monitor.store.tables import utcnow
from monitor.store.writes import insert_outputs

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
    lookback_seconds: float = 0.0,
    copy_text: Literal["sampled", "all"] = "sampled",
) -> SqlPullSummary:
    """One pass: copy the source rows after the watermark (less `lookback_seconds`) into the store."""
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
        source = source_queries.source_table(engine, table, columns)
        cursor_col = source.column(cursor) if cursor else source.columns["ts"]
        key = f"sql:{engine.url.render_as_string(hide_password=True)}/{table}"
        strip = copy_text == "sampled"
        copy = _Copy(store, engine, source, key, feature, now, rejects_dir, prepare, strip)
        return _pull(copy, cursor_col, batch, lookback_seconds)
    finally:
        if source_engine is None:
            engine.dispose()


def pull_configured(
    store: Engine,
    sql: SqlPullSettings,
    *,
    now: Callable[[], datetime],
    rejects_dir: Path | None,
    prepare: Callable[[OutputRecord], OutputRecord] | None,
) -> SqlPullSummary:
    """One pass over the table the config's `pull.sql` block describes."""
    return pull_sql(
        store,
        sql.url,
        sql.table,
        sql.columns,
        feature=sql.feature,
        cursor=sql.cursor,
        batch=sql.batch,
        now=now,
        rejects_dir=rejects_dir,
        prepare=prepare,
        lookback_seconds=sql.lookback_seconds,
        copy_text=sql.copy_text,
    )


@dataclass(frozen=True)
class _Copy:
    """One pass's fixed parts: where from, where to, and what each row goes through."""

    store: Engine
    engine: Engine
    source: SourceTable
    key: str
    """The watermark's name: the source's URL (no password) and table."""
    feature: str | None
    now: Callable[[], datetime]
    rejects_dir: Path | None
    prepare: Callable[[OutputRecord], OutputRecord] | None
    strip_text: bool


def _pull(copy: _Copy, cursor_col: Any, batch: int, lookback_seconds: float) -> SqlPullSummary:
    """Copy batches after the watermark until the source has no more rows."""
    summary = SqlPullSummary()
    with copy.store.connect() as conn:
        stored = pull_queries.watermark(conn, copy.key)
    mark = _start_mark(stored, lookback_seconds, f"{copy.source.name}.{cursor_col.name}")
    stored_mark = stored is not None
    while True:
        with copy.engine.connect() as conn:
            rows = source_queries.rows_after(conn, copy.source, cursor_col, mark, batch)
        if not rows:
            break
        records = _records(copy, rows, summary)
        summary.rows += len(rows)
        mark = Mark(rows[-1].cursor, str(rows[-1].values["id"]))
        _store_batch(copy, records, mark, summary, new_mark=not stored_mark)
        stored_mark = True
        if len(rows) < batch:
            break
    return summary


def _start_mark(stored: Watermark | None, lookback_seconds: float, cursor_name: str) -> Mark | None:
    """Where this pass starts: after the stored watermark, or `lookback_seconds` before it."""
    if stored is None:
        return None
    mark = Mark(_load(stored.cursor), stored.last_id)
    if lookback_seconds <= 0:
        return mark
    if not isinstance(mark.cursor, datetime):
        raise InputError(
            f"needs a date-time cursor; {cursor_name} holds {type(mark.cursor).__name__} values",
            field="pull.sql.lookback_seconds",
        )
    return Mark(mark.cursor - timedelta(seconds=lookback_seconds), "")  # every id at that time and after


def _records(copy: _Copy, rows: Sequence[SourceRow], summary: SqlPullSummary) -> list[OutputRecord]:
    """The batch's rows as validated records (text left out unless copied); bad rows rejected."""
    records: list[OutputRecord] = []
    for number, row in enumerate(rows, start=summary.rows + 1):
        raw = {name: _value(name, value) for name, value in row.values.items()}
        raw = {k: v for k, v in raw.items() if v is not None}
        if copy.feature and "feature" not in raw:
            raw["feature"] = copy.feature
        try:
            record = validate_output(raw)
        except InputError as exc:
            bad = BadLine(number, exc.field, exc.message, json.dumps(raw, default=str))
            _reject(summary, bad, copy.rejects_dir, copy.source.name)
            continue
        record = copy.prepare(record) if copy.prepare else record
        records.append(record.without_text() if copy.strip_text else record)
    return records


def _store_batch(
    copy: _Copy, records: Sequence[OutputRecord], mark: Mark, summary: SqlPullSummary, *, new_mark: bool
) -> None:
    """The batch's records and the watermark after it, in one transaction of the store."""
    with copy.store.begin() as conn:
        if records:
            counts = insert_outputs(conn, records, copy.now())
            summary.stored += counts.stored
            summary.duplicates += counts.duplicates
        saved = Watermark(_dump(mark.cursor), mark.last_id)
        pull_queries.save_watermark(conn, copy.key, saved, copy.now(), new=new_mark)


_UNUSED_TS = datetime(1970, 1, 1, tzinfo=UTC)


class SampledText:
    """`copy_text: sampled`: fills in the text of a cycle's sampled outputs from the app's table."""

    CHUNK = 500

    def __init__(
        self,
        sql: SqlPullSettings,
        prepare: Callable[[OutputRecord], OutputRecord] | None,
        retention_days: float | None = None,
    ) -> None:
        self.sql = sql
        self.prepare = prepare
        self.retention_days = retention_days

    def fill(self, store: Engine, feature: str, output_ids: Sequence[str], now: datetime) -> int:
        """Store the text of those of `output_ids` whose text pull mode left in the app's table;
        how many got it. Outputs that never had text (or came another way) are left alone, and
        so are outputs older than the retention period: their text stays deleted."""
        kept_since = None if self.retention_days is None else now - timedelta(days=self.retention_days)
        wanted = self._stripped(store, feature, output_ids, kept_since)
        if not wanted:
            return 0
        engine = make_engine(self.sql.url)
        try:
            found = self._read(engine, feature, wanted)
        finally:
            engine.dispose()
        with store.begin() as conn:
            for record in found:
                text_queries.set_text(conn, feature, record.id, record.input, record.output)
        return len(found)

    @staticmethod
    def _stripped(
        store: Engine, feature: str, output_ids: Sequence[str], kept_since: datetime | None
    ) -> list[str]:
        found: list[str] = []
        with store.connect() as conn:
            for start in range(0, len(output_ids), SampledText.CHUNK):
                chunk = output_ids[start : start + SampledText.CHUNK]
                found += text_queries.without_text(conn, feature, chunk, kept_since)
        return found

    def _read(self, engine: Engine, feature: str, ids: list[str]) -> list[OutputRecord]:
        columns = self.sql.columns
        wanted: dict[str, str] = {k: columns[k] for k in ("id", "input", "output", "feature") if k in columns}
        source = source_queries.source_table(engine, self.sql.table, wanted)
        records: list[OutputRecord] = []
        with engine.connect() as conn:
            for start in range(0, len(ids), self.CHUNK):
                chunk = ids[start : start + self.CHUNK]
                for values in source_queries.rows_by_id(conn, source, feature, chunk):
                    raw = {key: _value(key, value) for key, value in values.items()}
                    record = OutputRecord(
                        id=str(raw["id"]),
                        feature=feature,
                        ts=_UNUSED_TS,  # only the text goes on: redaction reads nothing else
                        input=raw.get("input"),
                        output=raw.get("output"),
                    )
                    records.append(self.prepare(record) if self.prepare else record)
        return records


def sampled_text(settings: Settings) -> SampledText | None:
    """The cycle's text source when pull mode copies the text of sampled outputs only."""
    sql = settings.pull.sql
    if sql is None or sql.copy_text != "sampled":
        return None
    from monitor.intake.privacy import storage_redaction

    return SampledText(sql, storage_redaction(settings), settings.privacy.retention_days)


def _value(name: str, value: Any) -> Any:
    """A column's value as the contract's JSON has it (ts and id as text, JSON columns decoded)."""
    if value is None:
        return None
    if name == "ts":
        return format_ts(value) if isinstance(value, datetime) else str(value)
    if name == "id":
        return str(value)
    if name in JSON_FIELDS and isinstance(value, str | bytes) and name not in ("input", "output"):
        return _json_or_text(value)
    return _plain(value)


def _json_or_text(value: str | bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _plain(value: Any) -> Any:
    """Decimals as floats and dates as ISO text, so that the record is JSON."""
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


MAX_REPORTED_BAD_ROWS = 50  # kept in the summary; every bad row goes to the rejects file


def _reject(summary: SqlPullSummary, bad: BadLine, directory: Path | None, table: str) -> None:
    summary.rejected += 1
    if len(summary.bad_rows) < MAX_REPORTED_BAD_ROWS:
        summary.bad_rows.append(bad)
    target = (directory or Path.cwd()) / f"pull-sql.{table}.outputs.rejects.jsonl"
    with open(target, "a", encoding="utf-8") as handle:
        payload = {"row": bad.line, "field": bad.field, "error": bad.message, "text": bad.text}
        handle.write(json.dumps(payload, ensure_ascii=False) + "\n")
    summary.rejects_file = target
