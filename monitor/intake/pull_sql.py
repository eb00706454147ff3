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

from sqlalchemy import (
    Engine,
    MetaData,
    String,
    Table,
    and_,
    cast,
    insert,
    or_,
    select,
    update,
)

from monitor.config import Settings, SqlPullSettings
from monitor.errors import InputError
from monitor.records import OUTPUT_FIELDS, BadLine, OutputRecord, validate_output
from monitor.store.engine import make_engine
from monitor.store.tables import outputs, pull_watermarks, utcnow
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
        strip = copy_text == "sampled"
        return _pull(
            store,
            engine,
            table,
            columns,
            feature,
            cursor,
            batch,
            now,
            rejects_dir,
            prepare,
            lookback_seconds,
            strip,
        )
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


def _pull(
    store: Engine,
    engine: Engine,
    table: str,
    columns: Mapping[str, str],
    feature: str | None,
    cursor: str | None,
    batch: int,
    now: Callable[[], datetime],
    rejects_dir: Path | None,
    prepare: Callable[[OutputRecord], OutputRecord] | None,
    lookback_seconds: float,
    strip_text: bool,
) -> SqlPullSummary:
    source_table = _reflect(engine, table)
    mapped = _columns(source_table, table, columns)
    cursor_col = _columns(source_table, table, {"cursor": cursor})["cursor"] if cursor else mapped["ts"]
    id_col = mapped["id"]
    key = f"sql:{engine.url.render_as_string(hide_password=True)}/{table}"
    summary = SqlPullSummary()
    with store.connect() as conn:
        row = conn.execute(select(pull_watermarks).where(pull_watermarks.c.source == key)).first()
    mark: tuple[Any, str] | None = (_load(row.cursor), row.last_id) if row else None
    stored_mark = row is not None
    if mark is not None and lookback_seconds > 0:
        if not isinstance(mark[0], datetime):
            raise InputError(
                f"needs a date-time cursor; {table}.{cursor_col.name} holds {type(mark[0]).__name__} values",
                field="pull.sql.lookback_seconds",
            )
        mark = (mark[0] - timedelta(seconds=lookback_seconds), "")  # every id at that time and after
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
            record = prepare(record) if prepare else record
            records.append(record.without_text() if strip_text else record)
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
                conn.execute(
                    update(outputs)
                    .where(outputs.c.feature == feature, outputs.c.output_id == record.id)
                    .values(input=record.input, output=record.output)
                )
        return len(found)

    @staticmethod
    def _stripped(
        store: Engine, feature: str, output_ids: Sequence[str], kept_since: datetime | None
    ) -> list[str]:
        stripped = or_(
            and_(outputs.c.input.is_(None), outputs.c.input_length.is_not(None)),
            and_(outputs.c.output.is_(None), outputs.c.output_length.is_not(None)),
        )
        if kept_since is not None:
            stripped = and_(stripped, outputs.c.ts >= kept_since)
        found: list[str] = []
        with store.connect() as conn:
            for start in range(0, len(output_ids), SampledText.CHUNK):
                chunk = list(output_ids[start : start + SampledText.CHUNK])
                query = select(outputs.c.output_id).where(
                    outputs.c.feature == feature, outputs.c.output_id.in_(chunk), stripped
                )
                found += conn.execute(query).scalars()
        return found

    def _read(self, engine: Engine, feature: str, ids: list[str]) -> list[OutputRecord]:
        columns = self.sql.columns
        wanted = [key for key in ("id", "input", "output", "feature") if key in columns]
        table = _reflect(engine, self.sql.table)
        mapped = _columns(table, self.sql.table, {key: columns[key] for key in wanted})
        id_col = mapped["id"]
        records: list[OutputRecord] = []
        with engine.connect() as conn:
            for start in range(0, len(ids), self.CHUNK):
                chunk = ids[start : start + self.CHUNK]
                query = select(*mapped.values()).where(id_col.in_(_as_column_type(id_col, chunk)))
                if "feature" in mapped:
                    query = query.where(mapped["feature"] == feature)
                for values in conn.execute(query):
                    raw = {key: _value(key, value) for key, value in zip(wanted, values, strict=True)}
                    record = OutputRecord(
                        id=str(raw["id"]),
                        feature=feature,
                        ts=_UNUSED_TS,  # only the text goes on: redaction reads nothing else
                        input=raw.get("input"),
                        output=raw.get("output"),
                    )
                    records.append(self.prepare(record) if self.prepare else record)
        return records


def _reflect(engine: Engine, table: str) -> Table:
    """The app's table or view (`schema.name` or `name`) as the database describes it."""
    schema, _, name = table.rpartition(".")
    return Table(name, MetaData(), autoload_with=engine, schema=schema or None)


def _columns(source: Table, table: str, names: Mapping[str, str]) -> dict[str, Any]:
    """key -> the source's column named for it; a name the table lacks is a config error."""
    try:
        return {key: source.c[column] for key, column in names.items()}
    except KeyError as exc:
        raise InputError(f"no column {exc.args[0]!r} in {table}", field="pull.sql.columns") from None


def _as_column_type(column: Any, ids: list[str]) -> list[Any]:
    """The stored (text) ids as the app's id column holds them (an integer, a UUID...), so its
    index is used; an id the column cannot hold is in none of its rows."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return ids
    if kind is str:
        return ids
    converted = []
    for value in ids:
        try:
            converted.append(kind(value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return converted


def sampled_text(settings: Settings) -> SampledText | None:
    """The cycle's text source when pull mode copies the text of sampled outputs only."""
    sql = settings.pull.sql
    if sql is None or sql.copy_text != "sampled":
        return None
    from monitor.intake.privacy import storage_redaction

    return SampledText(sql, storage_redaction(settings), settings.privacy.retention_days)


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
