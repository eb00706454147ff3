"""The app's own table or view that pull mode copies outputs from, in any database SQLAlchemy
reaches (`monitor.intake.pull_sql`): described by the database itself, read in batches after a
watermark, or by id for the text of sampled outputs.

Only the mapped columns are read: a field of the output contract (``id``, ``ts``, ...) ->
the source's column holding it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, MetaData, String, Table, and_, cast, or_, select

from monitor.errors import InputError


@dataclass(frozen=True)
class SourceTable:
    """A source table and its mapped columns: field -> the column holding it."""

    name: str
    """As configured: `schema.name` or `name`."""
    table: Table
    columns: dict[str, Any]

    def column(self, name: str) -> Any:
        """The source's column called `name` (the cursor); a name it lacks is a config error."""
        return _mapped(self.table, self.name, {name: name})[name]


class Mark(NamedTuple):
    """Where a copy stands: the last row's cursor value and its id as text."""

    cursor: Any
    last_id: str


class SourceRow(NamedTuple):
    """One source row: its cursor value, and field -> value as the driver returned it."""

    cursor: Any
    values: dict[str, Any]


def source_table(engine: Engine, name: str, columns: Mapping[str, str]) -> SourceTable:
    """The table or view as the database describes it, with the columns mapped to fields."""
    schema, _, table_name = name.rpartition(".")
    table = Table(table_name, MetaData(), autoload_with=engine, schema=schema or None)
    return SourceTable(name, table, _mapped(table, name, columns))


def rows_after(
    conn: Connection, source: SourceTable, cursor: Any, after: Mark | None, limit: int
) -> list[SourceRow]:
    """The next `limit` rows after `after`, in the order of (cursor column, id as text)."""
    id_text = cast(source.columns["id"], String)
    query = select(cursor, *source.columns.values()).order_by(cursor, id_text).limit(limit)
    if after is not None:
        query = query.where(or_(cursor > after.cursor, and_(cursor == after.cursor, id_text > after.last_id)))
    fields = list(source.columns)
    rows = []
    for value, *values in conn.execute(query):
        rows.append(SourceRow(value, dict(zip(fields, values, strict=True))))
    return rows


def rows_by_id(
    conn: Connection, source: SourceTable, feature: str, ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The rows with these (stored, text) ids, of `feature` when a feature column is mapped:
    field -> value. `ids` is one chunk (an IN list)."""
    id_col = source.columns["id"]
    query = select(*source.columns.values()).where(id_col.in_(_as_column_type(id_col, ids)))
    if "feature" in source.columns:
        query = query.where(source.columns["feature"] == feature)
    fields = list(source.columns)
    return [dict(zip(fields, values, strict=True)) for values in conn.execute(query)]


def _mapped(table: Table, name: str, columns: Mapping[str, str]) -> dict[str, Any]:
    """field -> the table's column named for it; a name the table lacks is a config error."""
    try:
        return {key: table.c[column] for key, column in columns.items()}
    except KeyError as exc:
        raise InputError(f"no column {exc.args[0]!r} in {name}", field="pull.sql.columns") from None


def _as_column_type(column: Any, ids: Sequence[str]) -> list[Any]:
    """The stored (text) ids as the app's id column holds them (an integer, a UUID...), so its
    index is used; an id the column cannot hold is in none of its rows."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return list(ids)
    if kind is str:
        return list(ids)
    converted = []
    for value in ids:
        try:
            converted.append(kind(value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return converted
