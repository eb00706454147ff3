"""Pull mode over a directory of JSONL logs, with real files on both stores: new lines only,
followed through rename rotation and truncation, a half-written line left for later, the
position kept in the store across restarts (a fresh engine), bad lines to a rejects file."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from monitor.intake.pull_jsonl import pull_jsonl
from monitor.store.engine import make_engine
from monitor.store.tables import outputs, samples

if TYPE_CHECKING:
    from conftest import CliRunner

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def line(i: int) -> str:
    return (
        json.dumps({"id": f"o{i}", "feature": "replies", "ts": "2026-03-01T10:00:00Z", "output": "hi"}) + "\n"
    )


def write(path: Path, lines: range, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as handle:
        handle.writelines(line(i) for i in lines)


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(outputs.c.output_id)).scalars())


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outputs)).scalar_one())


def test_new_lines_rotation_truncation_and_restart(engine: Engine, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.jsonl"
    write(app, range(0, 5))
    with open(app, "a", encoding="utf-8") as handle:
        handle.write(line(5)[:20])  # still being written
    first = pull_jsonl(engine, [logs], now=lambda: NOW)
    assert (first.stored, first.rejected) == (5, 0)
    with open(app, "a", encoding="utf-8") as handle:
        handle.write(line(5)[20:])
    write(app, range(6, 8))
    assert pull_jsonl(engine, [logs], now=lambda: NOW).stored == 3  # the finished line and two more
    assert pull_jsonl(engine, [logs], now=lambda: NOW).lines == 0

    # Rotation by rename: lines written to the old file just before the rename are not lost.
    write(app, range(8, 10))
    os.rename(app, logs / "app.jsonl.1")
    write(app, range(10, 13), mode="w")
    again = pull_jsonl(engine, [logs], now=lambda: NOW)
    assert (again.stored, again.duplicates) == (5, 0)

    # A restart: a new engine on the same store resumes from the stored positions.
    url = engine.url.render_as_string(hide_password=False)
    restarted = make_engine(url)
    try:
        write(app, range(13, 15))
        assert pull_jsonl(restarted, [logs], now=lambda: NOW).stored == 2
        # Truncation in place (copytruncate): read again from the start.
        write(app, range(15, 17), mode="w")
        truncated = pull_jsonl(restarted, [logs], now=lambda: NOW)
        assert (truncated.stored, truncated.duplicates) == (2, 0)
    finally:
        restarted.dispose()
    assert stored_ids(engine) == sorted(f"o{i}" for i in range(17))


def test_bad_lines_go_to_a_rejects_file_and_are_reported(engine: Engine, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "app.jsonl", "w", encoding="utf-8") as handle:
        handle.write(line(0))
        handle.write('{"id": "x", "feature": "replies", "ts": "yesterday"}\n')
        handle.write("not json\n")
        handle.write(line(1))
    summary = pull_jsonl(engine, [logs], now=lambda: NOW)
    assert (summary.stored, summary.rejected) == (2, 2)
    assert [bad.line for _, bad in summary.bad_lines] == [2, 3]
    assert summary.bad_lines[0][1].field == "ts"
    (rejects,) = summary.rejects_files
    assert [json.loads(text)["line"] for text in rejects.read_text().splitlines()] == [2, 3]
    assert "rejected" in summary.describe()
    # The rejects file is not read back as input; nothing is read twice.
    assert pull_jsonl(engine, [logs], now=lambda: NOW).lines == 0
    assert count(engine) == 2


def test_aiqm_pull_reads_the_configured_directories(aiqm: CliRunner, store_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "app.jsonl", range(3))
    with open(logs / "app.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "x", "feature": "replies", "ts": "yesterday"}\n')
    config = tmp_path / "aiqm.yaml"
    config.write_text(f"pull:\n  jsonl_dirs: [{logs}]\n", encoding="utf-8")
    env = {"AIQM_DATABASE_URL": store_url}
    first = aiqm("pull", "--config", config, env=env)
    assert first.code == 0, first.err
    assert "3 outputs stored" in first.out and "1 rejected" in first.out
    assert "app.jsonl:4: field 'ts'" in first.err
    again = aiqm("pull", "--config", config, env=env)
    assert "pulled 0 lines" in again.out
    assert aiqm("pull", env=env).code == 2  # nothing configured, nothing named


def test_with_unsampled_text_deleted_a_pulled_log_keeps_only_the_sampled_text(
    aiqm: CliRunner, engine: Engine, store_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "app.jsonl", range(40))
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        json.dumps(
            {
                "pull": {"jsonl_dirs": [str(logs)]},
                "privacy": {"unsampled_text": "delete"},
                "features": {
                    "replies": {"owner": "team@example.com", "sample_size": 8, "max_sample_size": 8}
                },
            }
        ),
        encoding="utf-8",
    )
    env = {"AIQM_DATABASE_URL": store_url}
    assert aiqm("pull", "--config", config, env=env).code == 0
    ran = aiqm("cycle", "--at", NOW.isoformat(), "--feature", "replies", "--config", config, env=env)
    assert ran.code == 0, ran.err
    with engine.connect() as conn:
        sampled = set(conn.execute(select(samples.c.output_id)).scalars())
        rows = conn.execute(select(outputs.c.output_id, outputs.c.output, outputs.c.output_length)).all()
    assert len(sampled) == 8 and len(rows) == 40
    assert {output_id for output_id, text, _ in rows if text is not None} == sampled
    assert {length for _, _, length in rows} == {2}  # "hi": the length stays for drift


def test_the_leading_scheduler_pulls_on_its_interval(engine: Engine, tmp_path: Path) -> None:
    from monitor.config import PullSettings, Settings
    from monitor.daemon.app import build_services
    from monitor.daemon.scheduler import FeatureScheduler

    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "app.jsonl", range(4))
    settings = Settings(pull=PullSettings(jsonl_dirs=(logs,), interval_seconds=0.2))
    services = build_services(settings, engine=engine, clock=lambda: NOW, scheduler=False)
    scheduler = FeatureScheduler(services, sync_seconds=3600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while count(engine) < 4:
            assert time.monotonic() < deadline, "the scheduler did not pull"
            time.sleep(0.05)
        write(logs / "app.jsonl", range(4, 6))
        while count(engine) < 6:
            assert time.monotonic() < deadline, "the scheduler did not pull again"
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert stored_ids(engine) == sorted(f"o{i}" for i in range(6))
