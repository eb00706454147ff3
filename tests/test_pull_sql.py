"""Pull mode from the app's own table, with a SQLite source table and a PostgreSQL one (the
source lives in the store's database of each backend): only new rows, in batches, the
watermark kept in the store across restarts, bad rows rejected and reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, Text, insert, select

from monitor.config import SqlPullSettings
from monitor.errors import InputError
from monitor.intake.pull_sql import SampledText, pull_configured, pull_sql
from monitor.store.engine import make_engine
from monitor.store.tables import outputs, samples

if TYPE_CHECKING:
    from conftest import CliRunner

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
COLUMNS = {"id": "request_id", "ts": "created_at", "output": "reply", "segment": "tags"}

app_meta = MetaData()
app_log = Table(
    "app_log",
    app_meta,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("reply", Text),
    Column("tags", Text),
    Column("secret", Text),
)


def add_rows(engine: Engine, ids: range, **overrides: object) -> None:
    rows = [
        {
            "request_id": f"r{i}",
            "created_at": NOW - timedelta(hours=100 - i),
            "reply": f"reply {i}",
            "tags": json.dumps({"lang": "en" if i % 2 else "de"}),
            "secret": "not copied",
            **overrides,
        }
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(insert(app_log), rows)


def stored(engine: Engine) -> list[tuple[str, object, object]]:
    with engine.connect() as conn:
        return sorted(
            (row[0], row[1], row[2])
            for row in conn.execute(select(outputs.c.output_id, outputs.c.segment, outputs.c.feature))
        )


def test_incremental_copy_with_watermark_across_restarts(engine: Engine, tmp_path: Path) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(7))
    first = pull_sql(engine, url, "app_log", COLUMNS, feature="replies", batch=3, now=lambda: NOW)
    assert (first.rows, first.stored, first.rejected) == (7, 7, 0)
    assert pull_sql(engine, url, "app_log", COLUMNS, feature="replies", now=lambda: NOW).rows == 0
    restarted = make_engine(url)  # a restarted daemon: the watermark is in the store
    try:
        add_rows(engine, range(7, 10))
        again = pull_sql(restarted, url, "app_log", COLUMNS, feature="replies", batch=2, now=lambda: NOW)
        assert (again.rows, again.stored, again.duplicates) == (3, 3, 0)
    finally:
        restarted.dispose()
    rows = stored(engine)
    assert [r[0] for r in rows] == sorted(f"r{i}" for i in range(10))
    assert rows[0][1] == {"lang": "de"} and rows[0][2] == "replies"
    with engine.connect() as conn:  # the text stays in the app's table until a cycle samples it
        text, length = conn.execute(
            select(outputs.c.output, outputs.c.output_length).where(outputs.c.output_id == "r3")
        ).one()
    assert text is None and length == len("reply 3")


def test_copy_text_all_copies_every_rows_text(engine: Engine) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(4))
    assert pull_sql(engine, url, "app_log", COLUMNS, feature="replies", copy_text="all").stored == 4
    with engine.connect() as conn:
        query = select(outputs.c.output, outputs.c.output_length).where(outputs.c.output_id == "r3")
        assert conn.execute(query).one() == ("reply 3", len("reply 3"))


def test_same_timestamps_are_split_by_id_and_bad_rows_rejected(engine: Engine, tmp_path: Path) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(5), created_at=NOW - timedelta(hours=1))  # one ts for all: ties across batches
    add_rows(engine, range(5, 6), tags="[1, 2]")  # a segment must be an object
    summary = pull_sql(
        engine, url, "app_log", COLUMNS, feature="replies", batch=2, now=lambda: NOW, rejects_dir=tmp_path
    )
    assert (summary.rows, summary.stored, summary.rejected) == (6, 5, 1)
    assert summary.bad_rows[0].field == "segment"
    assert summary.rejects_file is not None and "segment" in summary.rejects_file.read_text()
    assert [r[0] for r in stored(engine)] == [f"r{i}" for i in range(5)]


def test_an_autoincrement_cursor_and_bad_mappings(engine: Engine, tmp_path: Path) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(3))
    columns = {**COLUMNS, "feature": "reply"}
    with pytest.raises(InputError, match="no column"):
        pull_sql(engine, url, "app_log", {**COLUMNS, "output": "missing"}, feature="replies")
    with pytest.raises(InputError, match="not a field"):
        pull_sql(engine, url, "app_log", {**COLUMNS, "secret": "secret"}, feature="replies")
    summary = pull_sql(engine, url, "app_log", columns, cursor="pk", now=lambda: NOW, rejects_dir=tmp_path)
    assert (summary.rows, summary.rejected) == (3, 3)  # "reply 0" is not a feature name
    add_rows(engine, range(3, 5), reply="replies")  # rejected rows are reported, not read again
    later = pull_sql(engine, url, "app_log", columns, cursor="pk", now=lambda: NOW, rejects_dir=tmp_path)
    assert (later.rows, later.stored) == (2, 2)
    assert [r[0] for r in stored(engine)] == ["r3", "r4"]


def test_a_row_committed_late_is_copied_only_within_the_lookback(engine: Engine, tmp_path: Path) -> None:
    """With a time cursor, a row whose time is before the watermark arrives after the pass that
    moved the watermark on: missed without a lookback, copied once with one."""
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(95, 100))  # the newest row is at NOW - 1 h
    for lookback in (0.0, 600.0):
        copied = pull_sql(engine, url, "app_log", COLUMNS, feature="replies", lookback_seconds=lookback)
        assert copied.stored == (5 if lookback == 0 else 0)
    late = NOW - timedelta(hours=1, minutes=5)  # 5 minutes before the watermark
    add_rows(engine, range(200, 201), created_at=late)
    without = pull_sql(engine, url, "app_log", COLUMNS, feature="replies")
    assert (without.rows, without.stored) == (0, 0)
    within = pull_sql(engine, url, "app_log", COLUMNS, feature="replies", lookback_seconds=600)
    assert (within.rows, within.stored, within.duplicates) == (2, 1, 1)  # r99 read again, kept once
    assert [r[0] for r in stored(engine)] == sorted(["r200", *(f"r{i}" for i in range(95, 100))])
    again = pull_sql(engine, url, "app_log", COLUMNS, feature="replies", lookback_seconds=600)
    assert (again.stored, again.duplicates) == (0, 2)
    add_rows(engine, range(201, 202), created_at=NOW - timedelta(hours=2))  # later than the lookback
    assert pull_sql(engine, url, "app_log", COLUMNS, feature="replies", lookback_seconds=600).stored == 0


def test_a_lookback_needs_a_time_cursor(engine: Engine) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(2))
    assert pull_sql(engine, url, "app_log", COLUMNS, feature="replies", cursor="pk").stored == 2
    with pytest.raises(InputError, match="date-time cursor") as raised:
        pull_sql(engine, url, "app_log", COLUMNS, feature="replies", cursor="pk", lookback_seconds=60)
    assert raised.value.field == "pull.sql.lookback_seconds"


def test_aiqm_pull_copies_the_configured_table(aiqm: CliRunner, engine: Engine, tmp_path: Path) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(4))
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        json.dumps(
            {"pull": {"sql": {"url": url, "table": "app_log", "columns": COLUMNS, "feature": "replies"}}}
        ),
        encoding="utf-8",
    )
    env = {"AIQM_DATABASE_URL": url}
    first = aiqm("pull", "--config", config, env=env)
    assert first.code == 0, first.err
    assert "4 rows read, 4 outputs stored" in first.out
    assert "0 rows read" in aiqm("pull", "--config", config, env=env).out


def test_a_cycle_copies_the_text_of_the_outputs_it_samples_and_no_other(
    aiqm: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(50))
    add_rows(engine, range(50, 100), reply="write to ana@example.com")  # redacted before storage
    sql = {"url": url, "table": "app_log", "columns": COLUMNS, "feature": "replies"}
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        json.dumps(
            {
                "pull": {"sql": sql},
                "privacy": {"redact": True},
                "features": {
                    "replies": {"owner": "team@example.com", "sample_size": 10, "max_sample_size": 10}
                },
            }
        ),
        encoding="utf-8",
    )
    env = {"AIQM_DATABASE_URL": url}
    assert aiqm("pull", "--config", config, env=env).code == 0
    ran = aiqm("cycle", "--at", NOW.isoformat(), "--feature", "replies", "--config", config, env=env)
    assert ran.code == 0, ran.err
    with engine.connect() as conn:
        sampled = set(conn.execute(select(samples.c.output_id)).scalars())
        texts = dict(
            conn.execute(
                select(outputs.c.output_id, outputs.c.output).where(outputs.c.feature == "replies")
            ).all()
        )
    assert len(sampled) == 10 and len(texts) == 100
    assert {output_id for output_id, text in texts.items() if text is not None} == sampled
    for output_id in sampled:
        number = int(output_id[1:])
        assert texts[output_id] == (f"reply {number}" if number < 50 else "write to [EMAIL]")
    again = aiqm("cycle", "--at", NOW.isoformat(), "--feature", "replies", "--config", config, env=env)
    assert again.code == 0 and "Traceback" not in again.err


def test_sampled_text_is_read_by_the_apps_own_id_type_and_not_past_retention(engine: Engine) -> None:
    app_meta.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    add_rows(engine, range(5))  # created 100 to 96 hours before NOW; pk 1 to 5
    sql = SqlPullSettings(
        url=url,
        table="app_log",
        columns={"id": "pk", "ts": "created_at", "output": "reply"},
        feature="replies",
    )
    assert pull_configured(engine, sql, now=lambda: NOW, rejects_dir=None, prepare=None).stored == 5

    def texts() -> dict[str, object]:
        with engine.connect() as conn:
            return dict(conn.execute(select(outputs.c.output_id, outputs.c.output)).all())

    assert set(texts().values()) == {None}
    ids = ["1", "2", "3", "4", "5", "not-a-number"]
    retained = SampledText(sql, None, retention_days=4)  # text older than 96 hours stays deleted
    assert retained.fill(engine, "replies", ids, NOW) == 1
    assert {k: v for k, v in texts().items() if v is not None} == {"5": "reply 4"}
    assert SampledText(sql, None).fill(engine, "replies", ids, NOW) == 4
    assert texts() == {str(i + 1): f"reply {i}" for i in range(5)}
    assert SampledText(sql, None).fill(engine, "replies", ids, NOW) == 0  # nothing left to fill
