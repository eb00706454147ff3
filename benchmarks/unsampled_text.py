"""Deleting the text of unsampled outputs (`privacy.unsampled_text: delete`), SQLite and PostgreSQL.

One feature gets ``--rows`` outputs with input and output text spread over one week, stored
through the ingest's own writer, and one output in 1,000 is marked as sampled. Then, on each
store:

aiqm          ``monitor.intake.privacy.delete_unsampled_text`` over the two weeks a cycle covers: the
              sampled outputs are read first and left out by primary key, one transaction per
              hour of data
again         the same call once more (what every later cycle pays for the overlap: nothing
              left to delete)
one-update    what one would write by hand: a single ``UPDATE ... WHERE NOT EXISTS (sampled)``
              over the week, run on a fresh copy of the same data. On PostgreSQL the samples
              table has not been analysed yet, as after a burst of cycles before autovacuum.

Run::

    .venv/bin/python benchmarks/unsampled_text.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import Engine, and_, exists, null, or_, update
from sqlalchemy.engine import make_url

from monitor.intake.privacy import delete_unsampled_text
from monitor.records import OutputRecord
from monitor.store.engine import make_engine, migrate
from monitor.store.tables import outputs, samples
from monitor.store.writes import insert_outputs

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
FEATURE = "bench"
PG_ADMIN = os.environ.get("AIQM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = "aiqm_bench_unsampled"
BATCH = 10_000


def _fresh_url(store: str, folder: str, name: str) -> str:
    if store == "sqlite":
        return f"sqlite:///{folder}/{name}.sqlite3"
    admin = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    database = f"{PG_DB}_{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    return make_url(PG_ADMIN).set(database=database).render_as_string(hide_password=False)


def _build(url: str, rows: int) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    step = WEEK / rows
    start = AT - WEEK
    for first in range(0, rows, BATCH):
        records = [
            OutputRecord(
                id=f"o{i}",
                feature=FEATURE,
                ts=start + i * step,
                input=f"customer asks about order {i}",
                output="draft reply " * 20,
                signals={"confidence": 0.9},
            )
            for i in range(first, min(first + BATCH, rows))
        ]
        with engine.begin() as conn:
            insert_outputs(conn, records, AT)
            conn.execute(
                samples.insert(),
                [
                    {
                        "feature": FEATURE,
                        "output_id": r.id,
                        "cycle_at": AT,
                        "stratum": "all",
                        "inclusion_prob": 0.001,
                        "low_confidence": False,
                        "drawn_at": AT,
                    }
                    for r in records[::1000]
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE outputs")
    return engine


def _one_update(engine: Engine) -> int:
    sampled = exists().where(
        and_(samples.c.feature == outputs.c.feature, samples.c.output_id == outputs.c.output_id)
    )
    with engine.begin() as conn:
        result = conn.execute(
            update(outputs)
            .where(
                outputs.c.feature == FEATURE,
                outputs.c.ts >= AT - 2 * WEEK,
                outputs.c.ts < AT,
                or_(outputs.c.input.is_not(None), outputs.c.output.is_not(None)),
                ~sampled,
            )
            .values(input=null(), output=null())
        )
    return result.rowcount


def _timed(label: str, call: Callable[..., int], *args: object) -> None:
    started = time.perf_counter()
    cleared = call(*args)
    print(f"  {label:<11} {time.perf_counter() - started:8.2f} s  {cleared:>10,} outputs cleared")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for store in args.stores.split(","):
            print(f"{store}: {args.rows:,} outputs in the week, {args.rows // 1000:,} sampled")
            ours = _build(_fresh_url(store, folder, "aiqm"), args.rows)
            _timed("aiqm", delete_unsampled_text, ours, FEATURE, AT - 2 * WEEK, AT)
            _timed("again", delete_unsampled_text, ours, FEATURE, AT - 2 * WEEK, AT)
            ours.dispose()
            theirs = _build(_fresh_url(store, folder, "update"), args.rows)
            _timed("one-update", _one_update, theirs)
            theirs.dispose()


if __name__ == "__main__":
    main()
