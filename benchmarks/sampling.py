"""Sampling benchmark: draw a 50-output sample from a 10,000,000-row week, SQLite and PostgreSQL.

The store gets one feature with ``--rows`` outputs spread evenly over the week that ends at
the cycle time, after ``--before`` outputs of the week before (so that the window is not the
whole table). Rows are generated inside the database (a recursive CTE in SQLite,
``generate_series`` in PostgreSQL), not through ingest; the stores are kept between runs
(``--rebuild`` to start over). Segment: ``region`` in four unequal shares; signals: a
confidence.

Methods, each run ``--repeat`` times on a fresh connection (best and median; the pk draw
with a new seed each time, so it meets pages it has not read before):

pk-draw        ``monitor.store.sample_queries.random_unreviewed``: random pks inside the window's
               pk range, rejected when outside the window or already sampled (what the cycle does
               above ``BIG_WINDOW``), then the stratified draw over that phase-1 sample
               (``monitor.decide.sampling.draw_from_phase_one``)
order-random  ``... WHERE feature AND ts in window ORDER BY random() LIMIT 50``
tablesample   PostgreSQL ``TABLESAMPLE SYSTEM (p)`` then the window's ``WHERE`` (p sized for
              50 rows in expectation; it may return fewer, and it samples whole pages)
count         the exact ``count(*)`` of the window (what the pk draw needs for N)

Run::

    .venv/bin/python benchmarks/sampling.py --rows 10000000
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from monitor.decide.sampling import SamplingPlan, draw_from_phase_one, phase_one_size
from monitor.store.engine import make_engine, migrate

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
START = AT - timedelta(days=7)
FEATURE = "bench"
PG_ADMIN = os.environ.get("AIQM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = "aiqm_bench_sampling"


def _sqlite_build(path: str, rows: int, before: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        for count, start, span in ((before, START - timedelta(days=7), 7 * 86400), (rows, START, 7 * 86400)):
            step = span / max(count, 1)
            origin = start.strftime("%Y-%m-%d %H:%M:%S")
            conn.exec_driver_sql(
                "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) "
                "INSERT INTO outputs (feature, output_id, ts, segment, signals, input_length,"
                " output_length, ingested_at) "
                "SELECT ?, ? || i, strftime('%Y-%m-%d %H:%M:%f', ?, '+' || (i * ?) || ' seconds') || '000',"
                ' CASE abs(random()) % 20 WHEN 0 THEN \'{"region": "latam"}\''
                ' WHEN 1 THEN \'{"region": "apac"}\' WHEN 2 THEN \'{"region": "apac"}\''
                ' WHEN 3 THEN \'{"region": "us"}\' WHEN 4 THEN \'{"region": "us"}\''
                ' WHEN 5 THEN \'{"region": "us"}\' ELSE \'{"region": "eu"}\' END,'
                " '{\"confidence\": ' || (abs(random()) % 1000) / 1000.0 || '}', 100, 200,"
                " strftime('%Y-%m-%d %H:%M:%f', ?, '+' || (i * ?) || ' seconds') || '000' FROM s",
                (count, FEATURE, f"w{start.date()}-", origin, step, origin, step),
            )
    engine.dispose()


def _pg_build(url: str, rows: int, before: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        for count, start in ((before, START - timedelta(days=7)), (rows, START)):
            step = 7 * 86400 / max(count, 1)
            conn.execute(
                text(
                    "INSERT INTO outputs (feature, output_id, ts, segment, signals, input_length,"
                    " output_length, ingested_at) "
                    "SELECT :feature, :prefix || i, :start + i * make_interval(secs => :step),"
                    " jsonb_build_object('region', (ARRAY['latam','apac','apac','us','us','us',"
                    "'eu','eu','eu','eu','eu','eu','eu','eu','eu','eu','eu','eu','eu','eu'])"
                    "[1 + floor(random() * 20)::int]),"
                    " jsonb_build_object('confidence', random()), 100, 200,"
                    " :start + i * make_interval(secs => :step)"
                    " FROM generate_series(0, :count - 1) AS i"
                ),
                {
                    "feature": FEATURE,
                    "prefix": f"w{start.date()}-",
                    "start": start,
                    "step": step,
                    "count": count,
                },
            )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE outputs")
    engine.dispose()


def _pg_url(rebuild: bool, rows: int, before: int) -> str:
    admin = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    url = make_url(PG_ADMIN).set(database=PG_DB).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{PG_DB}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
    if not exists:
        started = time.perf_counter()
        _pg_build(url, rows, before)
        print(f"postgresql: built in {time.perf_counter() - started:.0f} s")
    return url


def _sqlite_url(rebuild: bool, rows: int, before: int, path: str) -> str:
    if rebuild and os.path.exists(path):
        os.remove(path)
    if not os.path.exists(path):
        started = time.perf_counter()
        _sqlite_build(path, rows, before)
        print(f"sqlite: built in {time.perf_counter() - started:.0f} s")
    return f"sqlite:///{path}"


def _time(engine: Engine, fn: Callable[[Any, int], int], repeat: int) -> tuple[float, float, int]:
    """Best and median of `repeat` runs, each with its own seed (so the pk draw meets cold pages)."""
    times: list[float] = []
    got = 0
    for attempt in range(repeat):
        with engine.connect() as conn:
            started = time.perf_counter()
            got = fn(conn, attempt)
            times.append(time.perf_counter() - started)
    times.sort()
    return times[0], times[len(times) // 2], got


def _bind(moment: datetime, dialect: str) -> Any:
    """A bound time as the store keeps it (raw SQL skips the column type)."""
    return (
        moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        if dialect == "sqlite"
        else moment
    )


def run(url: str, repeat: int, size: int) -> list[tuple[str, float, int]]:
    from monitor.store.sample_queries import random_unreviewed, window_span

    engine = make_engine(url)
    dialect = engine.dialect.name
    plan = SamplingPlan(size=size, stratify_by=["region"])
    results: list[tuple[str, float, int]] = []

    def pk_draw(conn: Any, attempt: int) -> int:
        window_span(conn, FEATURE, START, AT)  # what the cycle reads first to choose the path
        seed = 1000 + attempt
        first = random_unreviewed(conn, FEATURE, START, AT, phase_one_size(plan.size), seed)
        return len(draw_from_phase_one(first.outputs, first.population, plan, seed))

    def order_random(conn: Any, _attempt: int) -> int:
        rows = conn.execute(
            text(
                "SELECT pk FROM outputs WHERE feature = :feature AND ts >= :start AND ts < :end"
                " ORDER BY random() LIMIT :n"
            ),
            {"feature": FEATURE, "start": _bind(START, dialect), "end": _bind(AT, dialect), "n": size},
        ).all()
        return len(rows)

    def count(conn: Any, _attempt: int) -> int:
        return int(
            conn.execute(
                text("SELECT count(*) FROM outputs WHERE feature = :feature AND ts >= :start AND ts < :end"),
                {"feature": FEATURE, "start": _bind(START, dialect), "end": _bind(AT, dialect)},
            ).scalar_one()
        )

    methods: list[tuple[str, Callable[[Any, int], int]]] = [("pk-draw", pk_draw), ("count", count)]
    if dialect == "postgresql":
        with engine.connect() as conn:
            total = int(
                conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'outputs'")).scalar_one()
            )
        percent = min(100.0, 100.0 * size * 2 / max(total, 1))

        def tablesample(conn: Any, _attempt: int) -> int:
            rows = conn.execute(
                text(
                    f"SELECT pk FROM outputs TABLESAMPLE SYSTEM ({percent:.6f})"
                    " WHERE feature = :feature AND ts >= :start AND ts < :end LIMIT :n"
                ),
                {"feature": FEATURE, "start": START, "end": AT, "n": size},
            ).all()
            return len(rows)

        methods.append(("tablesample", tablesample))
    methods.append(("order-random", order_random))
    for name, fn in methods:
        best, median, got = _time(engine, fn, repeat)
        results.append((name, median, got))
        print(
            f"{dialect:10s} {name:13s} best {best * 1000:8.1f} ms"
            f"  median {median * 1000:8.1f} ms  rows={got}",
            flush=True,
        )
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--before", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--sqlite-path", default="/tmp/aiqm-bench-sampling.sqlite3")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    for store in args.stores.split(","):
        if store == "sqlite":
            url = _sqlite_url(args.rebuild, args.rows, args.before, args.sqlite_path)
        else:
            url = _pg_url(args.rebuild, args.rows, args.before)
        if not args.build_only:
            run(url, args.repeat, args.size)


if __name__ == "__main__":
    main()
