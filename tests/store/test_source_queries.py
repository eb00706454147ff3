"""Reading the app's own table for pull mode: mapped columns, batches after a mark in
(cursor, id as text) order, rows by their stored (text) id."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from monitor.errors import InputError
from monitor.store import source_queries
from monitor.store.source_queries import Mark


@pytest.fixture
def app_db(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE replies (rid INTEGER PRIMARY KEY, seq INTEGER, kind TEXT, body TEXT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO replies VALUES (1, 10, 'a', 'one'), (2, 10, 'b', 'two'), (10, 10, 'a', 'ten'),"
            " (3, 11, 'a', 'three'), (4, 12, 'b', 'four')"
        )
    return engine


COLUMNS = {"id": "rid", "ts": "seq", "feature": "kind", "output": "body"}


def test_rows_after_a_mark_in_cursor_then_text_id_order(app_db: Engine) -> None:
    source = source_queries.source_table(app_db, "replies", COLUMNS)
    cursor = source.column("seq")
    with app_db.connect() as conn:
        first = source_queries.rows_after(conn, source, cursor, None, 3)
        assert [(row.cursor, row.values["id"]) for row in first] == [(10, 1), (10, 10), (10, 2)]  # "10" < "2"
        assert first[0].values == {"id": 1, "ts": 10, "feature": "a", "output": "one"}
        rest = source_queries.rows_after(conn, source, cursor, Mark(10, "10"), 10)
        assert [row.values["id"] for row in rest] == [2, 3, 4]


def test_rows_by_text_id_of_one_feature(app_db: Engine) -> None:
    source = source_queries.source_table(
        app_db, "replies", {"id": "rid", "feature": "kind", "output": "body"}
    )
    with app_db.connect() as conn:
        found = source_queries.rows_by_id(conn, source, "a", ["1", "2", "10", "x"])  # "x" fits no integer id
    assert sorted((row["id"], row["output"]) for row in found) == [(1, "one"), (10, "ten")]


def test_a_column_the_table_lacks_is_a_config_error(app_db: Engine) -> None:
    with pytest.raises(InputError, match="no column 'missing' in replies"):
        source_queries.source_table(app_db, "replies", {"id": "rid", "ts": "missing"})
    source = source_queries.source_table(app_db, "replies", COLUMNS)
    with pytest.raises(InputError, match="no column 'nope' in replies"):
        source.column("nope")
