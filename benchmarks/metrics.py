"""Time a `/metrics` scrape on a store with 100 features of 20 weekly cycles each.

    .venv/bin/python benchmarks/metrics.py                      # SQLite and PostgreSQL
    .venv/bin/python benchmarks/metrics.py --backend sqlite --features 100 --cycles 20

One template feature gets a simulated history (`monitor.demo.simulate`: segments by language and
channel, a slow slide so that triggers fire), ingested and run through every weekly cycle by the
daemon's own `CycleRunner`, with simulated reviewers labelling what the sampler draws and a rule
judge labelling it too. Its rows (outputs, samples, labels, judge runs, cycles, baselines,
triggers) are then copied to the other features under their own names, so every feature has a
real history. The timed step is what a Prometheus scrape costs the daemon: the registry of
`monitor.metrics.exporter.build_registry` rendered to the text exposition (`generate_latest`), after a
few warm-up scrapes; SQL statements per scrape are counted too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import Engine, event, insert, literal, select, text, update
from sqlalchemy.engine import make_url

from monitor.config import Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import CHANNELS, LANGUAGES, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.judges import build_labellers
from monitor.metrics.exporter import TextExposition, build_registry
from monitor.store import tables as t
from monitor.store.engine import make_engine, migrate

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REVIEWED = 5
TEMPLATE = "feature-000"
COPIED = (
    t.outputs,
    t.labels,
    t.samples,
    t.cycles,
    t.baselines,
    t.trigger_states,
    t.trigger_events,
    t.judge_runs,
)


@dataclass(frozen=True)
class Result:
    backend: str
    features: int
    cycles: int
    series: int
    statements: int
    timings: dict[str, list[float]]

    def figures(self, kind: str) -> str:
        ordered = sorted(self.timings[kind])
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return f"{statistics.median(ordered):.1f} / {p95:.1f} ms"


def settings() -> Settings:
    return Settings(defaults={"judges": [{"kind": "length", "min_chars": 60}]})


def build_store(engine: Engine, features: int, cycles: int, folder: Path) -> None:
    """A store with `features` features that each ran `cycles` weekly cycles (see the module doc)."""
    spec = HistorySpec(
        feature=TEMPLATE,
        weeks=cycles,
        volume=120,
        pass_rate=[(0, 0.93), (cycles * 0.4, 0.93), (cycles, 0.78)],
        segments={"language": LANGUAGES, "channel": CHANNELS},
        seed=7,
    )
    outputs, labels, _ = write_history(spec, folder / "history")
    config = settings()
    end = spec.start + cycles * WEEK + timedelta(hours=6)
    clock = SimulatedClock(end)
    import_file(engine, str(outputs), OUTPUTS, clock)
    reviewers = RecordedReviewers.from_file(str(labels))
    runner = CycleRunner(
        engine, config, clock, labellers=[*build_labellers(config, engine, clock, llm=False), reviewers]
    )
    for week in range(1, cycles + 1):
        at = spec.start + week * WEEK + timedelta(hours=6)
        clock.now = at
        runner.run(TEMPLATE, at)
    with engine.begin() as conn:
        for number in range(1, features):
            name = f"feature-{number:03d}"
            for table in COPIED:
                columns = [c for c in table.columns if c.name != "pk"]
                chosen = [literal(name) if c.name == "feature" else c for c in columns]
                conn.execute(
                    insert(table).from_select(
                        [c.name for c in columns], select(*chosen).where(table.c.feature == TEMPLATE)
                    )
                )
            columns = list(t.features.columns)
            chosen = [literal(name) if c.name == "name" else c for c in columns]
            conn.execute(
                insert(t.features).from_select(
                    [c.name for c in columns], select(*chosen).where(t.features.c.name == TEMPLATE)
                )
            )
        if engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def _stable(body: bytes) -> list[str]:
    """The exposition's lines about quality (not the process's, nor the read's own duration)."""
    return [
        line
        for line in body.decode().splitlines()
        if "aiqm_" in line and "aiqm_metrics_read_duration_seconds" not in line
    ]


def _timed(scrape: Callable[[], bytes], runs: int, between: Callable[[], None] | None = None) -> list[float]:
    timings = []
    for _ in range(runs):
        if between is not None:
            between()
        started = time.perf_counter()
        scrape()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def time_scrapes(engine: Engine, runs: int, features: int) -> dict[str, Any]:
    """Milliseconds per scrape in three situations, the series of one scrape, and its statements.

    quiet: nothing changed since the previous scrape (cycles run weekly);
    busy: between scrapes every feature ingested outputs and reviewers labelled outputs of
    `REVIEWED` features (the review queue is counted again for those);
    cold: the first scrape of a new daemon (it counts every label and judge call once).
    """
    registry = build_registry(engine, settings())
    scrape = TextExposition(registry)
    assert _stable(generate_latest(registry)) == _stable(scrape()), "differs from prometheus_client's"
    for _ in range(3):
        scrape()
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    body = scrape()
    event.remove(engine, "before_cursor_execute", count)
    series = sum(1 for line in body.decode().splitlines() if line.startswith("aiqm_"))
    quiet = _timed(scrape, runs)
    with engine.connect() as conn:
        some = conn.execute(select(t.outputs.c.output_id).where(t.outputs.c.feature == TEMPLATE)).scalars()
        spare = list(some)
    tick = iter(range(10**9))

    def activity() -> None:
        step = next(tick)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                update(t.features).values(outputs_total=t.features.c.outputs_total + 100, last_ingest_at=now)
            )
            conn.execute(
                insert(t.labels),
                [
                    {
                        "feature": f"feature-{number:03d}",
                        "output_id": spare[step % len(spare)],
                        "source": f"human:bench-{step}",
                        "source_kind": "human",
                        "verdict": "pass",
                        "ts": now,
                        "received_at": now,
                    }
                    for number in range(0, features, max(1, features // REVIEWED))
                ],
            )

    busy = _timed(scrape, runs, activity)
    cold = _timed(lambda: TextExposition(build_registry(engine, settings()))(), max(3, runs // 10))
    return {"quiet": quiet, "busy": busy, "cold": cold, "series": series, "statements": statements}


def run(backend: str, url: str, features: int, cycles: int, runs: int, folder: Path) -> Result:
    engine = make_engine(url)
    try:
        migrate(engine)
        started = time.perf_counter()
        build_store(engine, features, cycles, folder)
        print(f"  {backend}: store built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        measured = time_scrapes(engine, runs, features)
    finally:
        engine.dispose()
    return Result(
        backend=backend,
        features=features,
        cycles=cycles,
        series=measured["series"],
        statements=measured["statements"],
        timings={kind: measured[kind] for kind in ("quiet", "busy", "cold")},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50, help="timed scrapes")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="a server to create a database on")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="aiqm-bench-metrics-") as tmp:
        folder = Path(tmp)
        if args.backend in ("sqlite", "both"):
            url = f"sqlite:///{folder / 'store.sqlite3'}"
            results.append(run("sqlite", url, args.features, args.cycles, args.runs, folder / "sqlite"))
        if args.backend in ("postgresql", "both"):
            results.append(postgres_run(args, folder / "postgresql"))
    print(f"# /metrics scrape, {datetime.now(UTC):%Y-%m-%d}: median / p95 of {args.runs} scrapes")
    print("| store | features x cycles | series | SQL statements | quiet | busy | cold (first) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.backend} | {r.features} x {r.cycles} | {r.series:,} | {r.statements} | "
            f"{r.figures('quiet')} | {r.figures('busy')} | {r.figures('cold')} |"
        )
    return 0


def postgres_run(args: argparse.Namespace, folder: Path) -> Result:
    import psycopg

    server = make_url(args.postgres_url)
    database = f"aiqm_bench_metrics_{uuid.uuid4().hex[:8]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        url = server.set(database=database).render_as_string(hide_password=False)
        return run("postgresql", url, args.features, args.cycles, args.runs, folder)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
