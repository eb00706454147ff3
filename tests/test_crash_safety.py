"""Crash safety, by really killing processes (SIGKILL) in the middle of a write:

- `aiqm ingest` of a big file (fed through a pipe, so the kill lands while its transaction holds
  batches already written): nothing of the file is stored, and a re-run stores all of it;
- a cycle whose labeller hangs after the sample and the cycle's row were stored: the re-run
  completes that cycle with the same sample (nothing sampled twice, nothing half-written);
- `aiqm serve` while it stores a big batch of labels: after the restart the batch is all there
  or not at all, and sending it again stores it all;
- `aiqm pull` half-way through a big log file: every batch it stored came with its position,
  so the next pass reads on from there, and in the end every line is stored exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from sqlalchemy import Table, func, select

from monitor.store.engine import make_engine
from monitor.store.tables import cycles, labels, outputs, pull_positions, samples

if TYPE_CHECKING:
    from conftest import CliRunner

pytestmark = pytest.mark.slow

FEATURE = "replies"
AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}


def _config(folder: Path, store_url: str) -> Path:
    path = folder / "aiqm.yaml"
    settings = {
        "database_url": store_url,
        "features": {FEATURE: {"owner": "team@example.com", "sample_size": 20}},
        "server": {"max_batch": 50_000, "max_body_bytes": 50_000_000},
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _lines(count: int, prefix: str = "o") -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"{prefix}-{n}",
                "feature": FEATURE,
                "ts": (AT - timedelta(seconds=1 + n % 500_000)).isoformat(),
                "output": f"answer number {n}",
                "signals": {"confidence": (n % 100) / 100},
            }
        ).encode()
        + b"\n"
        for n in range(count)
    ]


def _count(url: str, table: Table) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def _wait(what: str, check: Callable[[], Any], seconds: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(every)
    return value


def _writing(url: str, process: subprocess.Popen[bytes], seconds: float = 2.0) -> None:
    """Until the process has written in its open transaction (PostgreSQL: a session with a
    transaction id; SQLite: a bounded wait for the batches piped in to be written)."""
    if not url.startswith("postgresql"):
        time.sleep(seconds)
        return
    engine = make_engine(url)
    try:

        def open_write() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                    ).scalar_one()
                )

        _wait("a write transaction of the killed process", open_write, 60, every=0.005)
    finally:
        engine.dispose()
    assert process.poll() is None


def _sigkill(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def test_sigkill_during_ingest_stores_nothing_then_a_rerun_stores_all(
    aiqm: CliRunner, store_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, store_url)
    lines = _lines(60_000)
    whole = tmp_path / "big.jsonl"
    whole.write_bytes(b"".join(lines))
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "ingest", "-", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=_environment(),
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b"".join(lines[:35_000]))  # three batches of 10,000 written, then it waits
        process.stdin.flush()
        _writing(store_url, process, seconds=8.0)
        _sigkill(process)
    finally:
        _sigkill(process)
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
    assert process.returncode == -signal.SIGKILL
    assert _count(store_url, outputs) == 0  # one transaction: nothing of the file
    rerun = aiqm("ingest", whole, "--config", config)
    assert rerun.code == 0, rerun.err
    assert _count(store_url, outputs) == len(lines)


HANGING_CYCLE = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path

    from monitor.daemon.app import open_store
    from monitor.config import load_settings
    from monitor.cycle.runner import CycleRunner

    class Hanging:
        def label(self, feature, output_ids, at):
            Path(sys.argv[3]).write_text("\\n".join(output_ids))
            time.sleep(120)  # killed here: the sample and the cycle's row are stored
            return []

    settings = load_settings(sys.argv[1])
    engine = open_store(settings)
    runner = CycleRunner(engine, settings, lambda: datetime.now(UTC), labellers=[Hanging()])
    runner.run("replies", datetime.fromisoformat(sys.argv[2]))
    """
)


def test_sigkill_during_a_cycle_then_the_rerun_completes_it_once(
    aiqm: CliRunner, store_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, store_url)
    data = tmp_path / "outputs.jsonl"
    data.write_bytes(b"".join(_lines(500)))
    assert aiqm("ingest", data, "--config", config).code == 0
    script = tmp_path / "hanging_cycle.py"
    script.write_text(HANGING_CYCLE, encoding="utf-8")
    drawn = tmp_path / "drawn.txt"
    process = subprocess.Popen(
        [sys.executable, str(script), str(config), AT.isoformat(), str(drawn)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=_environment(),
    )
    try:
        _wait("the labeller's call", lambda: drawn.exists() and drawn.read_text(), 60)
        _sigkill(process)
    finally:
        _sigkill(process)
        if process.stderr is not None:
            process.stderr.close()
    sampled = set(drawn.read_text().split("\n"))
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(cycles.c.status).where(cycles.c.feature == FEATURE)).all()
            stored_sample = set(conn.execute(select(samples.c.output_id)).scalars())
        assert [status for (status,) in rows] == ["running"]  # the row, no results: not half-written
        assert stored_sample and stored_sample <= sampled  # the judges see the sample (and more)
        rerun = aiqm("cycle", "--at", AT.isoformat(), "--feature", FEATURE, "--config", config)
        assert rerun.code == 0, rerun.err
        with engine.connect() as conn:
            rows = conn.execute(select(cycles.c.at, cycles.c.status).where(cycles.c.feature == FEATURE)).all()
            after = list(conn.execute(select(samples.c.output_id)).scalars())
        assert [status for _, status in rows] == ["done"] and len(rows) == 1
        assert sorted(after) == sorted(stored_sample)  # the same sample; nothing drawn twice
        again = aiqm("cycle", "--at", AT.isoformat(), "--feature", FEATURE, "--config", config)
        assert again.code == 0, again.err
        assert _count(store_url, samples) == len(stored_sample) and _count(store_url, cycles) == 1
    finally:
        engine.dispose()


def test_sigkill_during_a_label_write_keeps_the_batch_whole(
    aiqm: CliRunner, store_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, store_url)
    data = tmp_path / "outputs.jsonl"
    count = 20_000  # a write long enough (a few hundred ms) for the kill to land inside it
    data.write_bytes(b"".join(_lines(count)))
    assert aiqm("ingest", data, "--config", config).code == 0
    made = aiqm("token", "create", "--role", "review", "--name", "crash", "--config", config)
    headers = {"Authorization": f"Bearer {made.out.strip()}"}
    batch = [
        {"output_id": f"o-{n}", "feature": FEATURE, "verdict": "pass", "source": "human:crash"}
        for n in range(count)
    ]
    outcomes: list[str] = []
    for attempt in range(3):
        log = tmp_path / f"serve-{attempt}.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=_environment(),
            )
        try:
            url = _wait(
                "the daemon's address",
                lambda log=log: next(
                    (
                        line.split("serving on ", 1)[1].split()[0]
                        for line in log.read_text().splitlines()
                        if "serving on http://" in line
                    ),
                    None,
                ),
                60,
            )
            _wait("readiness", lambda url=url: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60)

            def post(url: str = url) -> None:
                try:
                    answer = httpx.post(f"{url}/v1/labels", json=batch, headers=headers, timeout=60)
                    outcomes.append(str(answer.status_code))
                except httpx.HTTPError:
                    outcomes.append("killed")

            sender = threading.Thread(target=post)
            sender.start()
            if store_url.startswith("postgresql"):
                _writing(store_url, process)  # its transaction has written: kill it now
            else:
                time.sleep(0.15 * (attempt + 1))  # the batch is parsed, then written in ~0.1-0.5 s
            _sigkill(process)
            sender.join(timeout=70)
            assert not sender.is_alive()
        finally:
            _sigkill(process)
        stored = _count(store_url, labels)
        assert stored in (0, count), (attempt, stored)  # all or nothing
        if stored == count:
            break
    labels_file = tmp_path / "labels.jsonl"
    labels_file.write_text("\n".join(json.dumps(b) for b in batch) + "\n", encoding="utf-8")
    assert aiqm("labels", "import", labels_file, "--config", config).code == 0
    assert _count(store_url, labels) == count, outcomes


def test_sigkill_during_a_pull_then_the_next_pass_reads_on_from_the_saved_position(
    aiqm: CliRunner, store_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, store_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = _lines(150_000)
    (logs / "app.jsonl").write_bytes(b"".join(lines))
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "pull", str(logs), "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=_environment(),
    )
    try:
        _wait("a first batch stored", lambda: _count(store_url, outputs) > 0, 120)
        _sigkill(process)
    finally:
        _sigkill(process)
    assert process.returncode == -signal.SIGKILL
    stored = _count(store_url, outputs)
    assert 0 < stored < len(lines), "the kill should land half-way; make the file bigger"
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            saved = conn.execute(select(pull_positions.c.lines, pull_positions.c.offset)).one()
        # Each batch was committed with the position after it: the two agree exactly.
        assert saved.lines == stored
        assert saved.offset == sum(len(line) for line in lines[:stored])
        rerun = aiqm("pull", logs, "--config", config)
        assert rerun.code == 0, rerun.err
        assert f"{len(lines) - stored} outputs stored, 0 duplicate" in rerun.out
        with engine.connect() as conn:
            ids = list(conn.execute(select(outputs.c.output_id)).scalars())
        assert len(ids) == len(set(ids)) == len(lines)
    finally:
        engine.dispose()
