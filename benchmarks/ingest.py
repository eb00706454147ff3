"""Time `aiqm ingest` of a JSONL file of logged outputs into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/ingest.py                   # 1,000,000 outputs, both stores
    .venv/bin/python benchmarks/ingest.py --outputs 200000 --backend sqlite

The file is a simulated history (`monitor.demo.simulate`), written once and cached. Each run goes
through `monitor.intake.ingest.import_file`, the code behind `aiqm ingest`, in a fresh subprocess on
a fresh store, so the peak memory reported (the child's maximum resident set size) is that
of the import alone. A second pass re-ingests the same file: every line is then a duplicate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.demo.simulate import LANGUAGES, HistorySpec, write_history

PER_WEEK = 25_000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Run:
    backend: str
    label: str
    lines: int
    stored: int
    duplicates: int
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def history_file(outputs: int, cache: Path) -> tuple[Path, int]:
    """The cached simulated history of about `outputs` outputs, and its exact line count."""
    weeks = max(1, math.ceil(outputs / PER_WEEK))
    folder = cache / f"bench-{weeks}w"
    path, count_file = folder / "outputs.jsonl", folder / "count"
    if not count_file.exists():
        print(f"writing a {weeks}-week history to {folder} (once) ...", file=sys.stderr)
        spec = HistorySpec(
            feature="bench", weeks=weeks, volume=PER_WEEK, pass_rate=0.9, segments={"language": LANGUAGES}
        )
        _, _, count = write_history(spec, folder)
        count_file.write_text(str(count))
    return path, int(count_file.read_text())


def child(url: str, path: str) -> None:
    """Runs in the subprocess: one import, its counts and time as JSON on standard output."""
    from monitor.intake.ingest import OUTPUTS, import_file
    from monitor.store.engine import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    start = time.perf_counter()
    summary = import_file(engine, path, OUTPUTS, lambda: datetime.now(UTC))
    seconds = time.perf_counter() - start
    engine.dispose()
    print(json.dumps({"stored": summary.stored, "duplicates": summary.duplicates, "seconds": seconds}))


def measure(backend: str, label: str, url: str, path: Path, lines: int) -> Run:
    command = [sys.executable, __file__, "--child", url, str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{backend}: the import failed (exit {process.returncode})")
    result = json.loads(output)
    return Run(
        backend,
        label,
        lines,
        result["stored"],
        result["duplicates"],
        result["seconds"],
        usage.ru_maxrss / 1024,
    )


def postgres_database(admin_url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"aiqm_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(admin_url)
    with psycopg.connect(admin.set(drivername="postgresql").render_as_string(False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, admin.set(database=name).render_as_string(False)


def drop_postgres_database(admin_url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )


def postgres_version(url: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outputs", type=int, default=1_000_000, help="about this many outputs")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("AIQM_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aiqm-bench")
    parser.add_argument("--once", action="store_true", help="skip the second (all duplicates) pass")
    parser.add_argument("--child", nargs=2, metavar=("URL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    path, lines = history_file(args.outputs, args.cache)
    size_mb = path.stat().st_size / 1e6
    print(f"{path}: {lines:,} outputs, {size_mb:,.0f} MB", file=sys.stderr)
    runs: list[Run] = []
    about = machine()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        passes = ["new outputs"] if args.once else ["new outputs", "same file again (all duplicates)"]
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(dir=args.cache) as folder:
                url = f"sqlite:///{folder}/bench.sqlite3"
                runs.extend(measure(backend, label, url, path, lines) for label in passes)
        else:
            about += f"; {postgres_version(args.postgres_url)}"
            name, url = postgres_database(args.postgres_url)
            try:
                runs.extend(measure(backend, label, url, path, lines) for label in passes)
            finally:
                drop_postgres_database(args.postgres_url, name)
        for run in runs[-len(passes) :]:
            print(
                f"{run.backend:10} {run.label:34} {run.seconds:7.1f} s {run.rate:10,.0f} outputs/s "
                f"peak RSS {run.peak_rss_mb:5.0f} MB",
                file=sys.stderr,
            )

    print(f"\n{lines:,} outputs ({size_mb:,.0f} MB of JSONL); {about}\n")
    print("| store | pass | time | outputs/s | stored | duplicates | peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for run in runs:
        print(
            f"| {run.backend} | {run.label} | {run.seconds:.1f} s | {run.rate:,.0f} | {run.stored:,} | "
            f"{run.duplicates:,} | {run.peak_rss_mb:.0f} MB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
