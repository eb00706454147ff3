"""Upgrading the daemon on both stores: a store left by the previous release (jobs naming the
cycle function at `monitor.scheduler`, before it moved to `monitor.daemon.scheduler`; cycles,
tokens, an override) keeps its jobs under the new daemon, the run it missed runs exactly once,
and its tokens and override still work. Without the rewrite APScheduler drops the job and the
missed run is lost, which is what these tests would catch."""

from __future__ import annotations

import logging
import pickle
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.util import obj_to_ref, ref_to_obj
from sqlalchemy import Engine, MetaData, Table, select, update

from monitor.api.app import create_app
from monitor.config import FeatureSettings, Settings
from monitor.cycle.runner import CycleRunner
from monitor.daemon import scheduler as scheduler_module
from monitor.daemon.app import build_services
from monitor.daemon.scheduler import (
    JOBS_TABLE,
    MOVED_FUNCTIONS,
    FeatureScheduler,
    job_id,
    run_scheduled_cycle,
)
from monitor.daemon.services import Services
from monitor.daemon.tokens import create_token
from monitor.records import validate_output
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.scheduler_jobs import point_jobs_at_moved_functions
from monitor.store.writes import insert_outputs

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)

CLOCK = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)  # the daemon's clock: the due cycle is 06:00
DUE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
EARLIER = DUE - timedelta(days=7)  # the previous release's last cycle
FEATURE = "support-reply"
OLD_REFERENCE = "monitor.scheduler:run_scheduled_cycle"  # where the previous release had it
SETTINGS = Settings(features={FEATURE: FeatureSettings(owner="team@example.com", schedule="0 6 * * 1")})


class Runs:
    """The cycles the daemon's scheduler ran (wrapping its runner)."""

    def __init__(self, services: Services) -> None:
        self.inner = services.runner
        self.done: list[tuple[str, datetime]] = []
        self._lock = threading.Lock()
        services.runner = self  # type: ignore[assignment]

    def run(self, feature: str, at: datetime) -> Any:
        outcome = self.inner.run(feature, at)
        with self._lock:
            self.done.append((feature, at))
        return outcome


def new_daemon(engine: Engine) -> tuple[Services, Runs]:
    services = build_services(SETTINGS, engine=engine, clock=lambda: CLOCK)
    return services, Runs(services)


def jobs_table(engine: Engine) -> Table:
    return Table(JOBS_TABLE, MetaData(), autoload_with=engine)


def stored_row(engine: Engine, feature: str) -> tuple[float | None, bytes]:
    """The job's row as stored: its next run time column and its pickled state."""
    table = jobs_table(engine)
    with engine.connect() as conn:
        column, blob = conn.execute(
            select(table.c.next_run_time, table.c.job_state).where(table.c.id == job_id(feature))
        ).one()
    return column, bytes(blob)


def stored_job(engine: Engine, feature: str) -> tuple[float | None, dict[str, Any]]:
    """The job's row as stored: its next run time column and its unpickled state."""
    column, blob = stored_row(engine, feature)
    return column, pickle.loads(blob)


def store_job_as(engine: Engine, feature: str, func: str, next_run: datetime) -> None:
    """Rewrite the stored job as a daemon of the release naming `func` left it, down since `next_run`."""
    _, state = stored_job(engine, feature)
    state["func"], state["next_run_time"] = func, next_run
    table = jobs_table(engine)
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == job_id(feature))
            .values(
                next_run_time=next_run.timestamp(), job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
            )
        )


@pytest.fixture
def old_store(engine: Engine) -> Iterator[tuple[Engine, str]]:
    """A store as the previous release left it, with the read token it minted: outputs, a done
    cycle, an override in force, and the feature's job naming the old function, its next run
    (a Monday 06:00) passed 15 days ago while the daemon was down."""
    records = [
        validate_output(
            {"id": f"o{i}", "feature": FEATURE, "ts": (DUE - timedelta(hours=12 * i + 1)).isoformat()}
        )
        for i in range(20)
    ]
    with engine.begin() as conn:
        insert_outputs(conn, records, DUE)
    CycleRunner(engine, SETTINGS, lambda: EARLIER).run(FEATURE, EARLIER)
    with engine.begin() as conn:
        fq.add_override(conn, FEATURE, "off", "vendor outage", EARLIER, set_by="ada")
        q.set_feature_mode(conn, FEATURE, "off", "manual override: vendor outage", EARLIER)
    token = create_token(engine, "app-reader", "read", EARLIER)
    writer = FeatureScheduler(build_services(SETTINGS, engine=engine, clock=lambda: EARLIER, scheduler=False))
    writer.start()  # the job, in APScheduler's stored format
    writer.shutdown()
    missed = datetime.now(UTC) - timedelta(days=15)
    store_job_as(engine, FEATURE, OLD_REFERENCE, missed)
    yield engine, token


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def cycle_ats(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return [row["at"] for row in q.cycle_rows(conn, FEATURE)]


def test_the_new_daemon_keeps_the_old_release_job_and_runs_the_missed_cycle_once(
    old_store: tuple[Engine, str],
) -> None:
    engine, token = old_store
    services, runs = new_daemon(engine)
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(services)) as http:  # its start starts the scheduler
        wait_for(lambda: len(runs.done) == 1)
        status = http.get(f"/v1/features/{FEATURE}/status", headers=bearer)
        assert services.scheduler is not None and services.scheduler.running
        kept = services.scheduler.jobs()  # type: ignore[attr-defined]
    assert runs.done == [(FEATURE, DUE)]
    assert cycle_ats(engine) == [EARLIER, DUE]
    assert set(kept) == {FEATURE} and kept[FEATURE].func_ref == obj_to_ref(run_scheduled_cycle)
    column, state = stored_job(engine, FEATURE)
    assert state["func"] == "monitor.daemon.scheduler:run_scheduled_cycle"
    assert column is not None and column > time.time()  # the next Monday, not another catch-up
    assert status.status_code == 200, status.text
    assert status.json()["mode"] == "off" and "vendor outage" in status.json()["reason"]
    again, more = new_daemon(engine)  # a restart without downtime runs nothing
    with TestClient(create_app(again)):
        time.sleep(0.5)
    assert more.done == [] and runs.done == [(FEATURE, DUE)]


def test_without_the_rewrite_the_job_is_dropped_and_the_missed_run_lost(
    old_store: tuple[Engine, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine, _ = old_store
    monkeypatch.setattr(scheduler_module, "MOVED_FUNCTIONS", {})
    services, runs = new_daemon(engine)
    scheduler = FeatureScheduler(services, sync_seconds=3600)
    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        scheduler.start()
    try:
        assert f'Unable to restore job "{job_id(FEATURE)}" -- removing it' in caplog.text
        fresh = scheduler.next_run_time(FEATURE)  # the job sync() added again, from scratch
        assert fresh is not None and fresh > datetime.now(UTC)  # so the missed run never comes
    finally:
        scheduler.shutdown(wait=True)
    assert runs.done == [] and cycle_ats(engine) == [EARLIER]


def test_rewriting_the_stored_jobs_changes_only_their_function_and_only_once(engine: Engine) -> None:
    assert point_jobs_at_moved_functions(engine, MOVED_FUNCTIONS) == []  # no job table yet
    services = build_services(
        Settings(
            features={
                FEATURE: FeatureSettings(owner="t@example.com"),
                "other": FeatureSettings(owner="t@x.org"),
            }
        ),
        engine=engine,
        clock=lambda: CLOCK,
        scheduler=False,
    )
    writer = FeatureScheduler(services)
    writer.start()
    writer.shutdown()
    when = datetime(2026, 2, 23, 6, 0, tzinfo=UTC)
    store_job_as(engine, FEATURE, OLD_REFERENCE, when)
    before_other = stored_row(engine, "other")
    assert point_jobs_at_moved_functions(engine, MOVED_FUNCTIONS) == [job_id(FEATURE)]
    column, state = stored_job(engine, FEATURE)
    assert state["func"] == MOVED_FUNCTIONS[OLD_REFERENCE]
    assert column == when.timestamp() and state["next_run_time"] == when
    assert state["args"][1] == FEATURE and state["misfire_grace_time"] == 7 * 24 * 3600
    assert stored_row(engine, "other") == before_other
    assert point_jobs_at_moved_functions(engine, MOVED_FUNCTIONS) == []  # idempotent


def test_every_moved_reference_leads_to_the_cycle_function() -> None:
    assert OLD_REFERENCE in MOVED_FUNCTIONS
    for old, new in MOVED_FUNCTIONS.items():
        assert old != new and ref_to_obj(new) is run_scheduled_cycle
