"""The daemon's scheduler on both stores: one job per feature kept in the store; a run missed
while the daemon was down runs once at the next start (never twice, and a restart does not drop
it); a changed schedule updates the job; never two cycles of one feature at once; shutdown lets
a running cycle finish; a cycle interrupted by a crash is finished at start; failures are logged."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, select, update

from monitor.config import FeatureSettings, Settings
from monitor.cycle.result import CycleOutcome
from monitor.cycle.runner import CycleRunner
from monitor.daemon.app import build_services
from monitor.daemon.scheduler import JOBS_TABLE, FeatureScheduler, job_id
from monitor.daemon.services import Services
from monitor.records import validate_output
from monitor.store import cycle_queries as q
from monitor.store.writes import insert_outputs

pytestmark = pytest.mark.timeout(120)

CLOCK = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)  # the daemon's clock: the due cycle is 06:00
DUE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
CONFIGURED, LOGGED = "support-reply", "summarizer"


@dataclass
class CountingRunner:
    """A CycleRunner that records each run (and can be slowed down, or made to fail)."""

    inner: CycleRunner
    delay: float = 0.0
    fail: bool = False
    runs: list[tuple[str, datetime]] = field(default_factory=list)
    finished: list[tuple[str, datetime]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None
    """When set, a run waits for it (as long as a test needs the lock held)."""

    def run(self, feature: str, at: datetime) -> CycleOutcome:
        self.runs.append((feature, at))
        self.started.set()
        time.sleep(self.delay)
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.fail:
            raise RuntimeError("the judge API is down")
        outcome = self.inner.run(feature, at)
        self.finished.append((feature, at))
        return outcome


class Notifier:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    def deliver_new(self, feature: str) -> list[object]:
        self.delivered.append(feature)
        return []


def make_services(
    engine: Engine, schedule: str = "0 6 * * 1", **runner: Any
) -> tuple[Services, CountingRunner]:
    settings = Settings(features={CONFIGURED: FeatureSettings(owner="team@example.com", schedule=schedule)})
    services = build_services(
        settings, engine=engine, clock=lambda: CLOCK, scheduler=False, notifier=Notifier()
    )
    counting = CountingRunner(services.runner, **runner)
    services.runner = counting  # type: ignore[assignment]
    return services, counting


@pytest.fixture
def logged(engine: Engine) -> Engine:
    """A store where one feature has outputs (the config names another)."""
    records = [
        validate_output(
            {"id": f"o{i}", "feature": LOGGED, "ts": (DUE - timedelta(days=1, minutes=i)).isoformat()}
        )
        for i in range(10)
    ]
    with engine.begin() as conn:
        insert_outputs(conn, records, DUE)
    return engine


@pytest.fixture
def schedulers() -> Iterator[Callable[[Services], FeatureScheduler]]:
    made: list[FeatureScheduler] = []

    def make(services: Services) -> FeatureScheduler:
        scheduler = FeatureScheduler(services, sync_seconds=3600)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown(wait=True)


def set_next_run(engine: Engine, feature: str, when: datetime) -> None:
    """What a daemon that was down over `when` left in the job store: a next run time in the past."""
    table = Table(JOBS_TABLE, MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        state = pickle.loads(
            conn.execute(select(table.c.job_state).where(table.c.id == job_id(feature))).scalar_one()
        )
        state["next_run_time"] = when
        conn.execute(
            update(table)
            .where(table.c.id == job_id(feature))
            .values(next_run_time=when.timestamp(), job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
        )


def wait_for(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def cycle_ats(engine: Engine, feature: str) -> list[datetime]:
    with engine.connect() as conn:
        return [row["at"] for row in q.cycle_rows(conn, feature)]


def test_each_feature_gets_one_stored_job(
    logged: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    services, counting = make_services(logged)
    scheduler = schedulers(services)
    scheduler.start()
    assert scheduler.running
    jobs = scheduler.jobs()
    assert set(jobs) == {CONFIGURED, LOGGED}
    for name, job in jobs.items():
        assert job.id == job_id(name) and job.coalesce and job.max_instances == 1
        assert job.misfire_grace_time == 7 * 24 * 3600  # one period of the weekly schedule
        assert job.next_run_time.weekday() == 0 and (job.next_run_time.hour, job.next_run_time.minute) == (
            6,
            0,
        )
        assert job.next_run_time > datetime.now(UTC)
    scheduler.ensure(["brand-new"])
    assert "brand-new" in scheduler.jobs()
    scheduler.shutdown()
    assert not scheduler.running
    again = schedulers(services)
    again.start()
    assert set(again.jobs()) == {CONFIGURED, LOGGED, "brand-new"}
    assert counting.runs == []


def test_a_run_missed_while_down_runs_once_at_the_next_start(
    logged: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    services, counting = make_services(logged)
    first = schedulers(services)
    first.start()
    first.shutdown()
    # Down over three weekly fire times: coalesced into one run, of the cycle due now.
    set_next_run(logged, LOGGED, datetime.now(UTC) - timedelta(days=15))
    second = schedulers(services)
    second.start()
    wait_for(lambda: len(counting.finished) == 1)
    wait_for(lambda: services.notifier.delivered == [LOGGED])  # notified after the cycle's queries
    assert counting.runs == [(LOGGED, DUE)]
    assert cycle_ats(logged, LOGGED) == [DUE]
    next_run = second.next_run_time(LOGGED)
    assert next_run is not None and next_run > datetime.now(UTC)
    second.shutdown()
    third = schedulers(services)  # a restart without downtime runs nothing
    third.start()
    time.sleep(0.5)
    assert counting.runs == [(LOGGED, DUE)]


def test_a_changed_schedule_updates_the_job_and_keeps_a_missed_run(
    logged: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    services, counting = make_services(logged)
    first = schedulers(services)
    first.start()
    first.shutdown()
    set_next_run(logged, CONFIGURED, datetime.now(UTC) - timedelta(hours=1))
    daily, counting = make_services(logged, schedule="0 6 * * *")
    second = schedulers(daily)
    second.start()
    wait_for(lambda: len(counting.finished) == 1)
    assert counting.runs == [(CONFIGURED, DUE)]
    job = second.jobs()[CONFIGURED]
    assert "day_of_week='*'" in str(job.trigger) and job.misfire_grace_time == 24 * 3600
    assert job.next_run_time - datetime.now(UTC) <= timedelta(days=1)
    second.shutdown()
    hourly, _ = make_services(logged, schedule="15 * * * *")
    third = schedulers(hourly)
    third.start()
    job = third.jobs()[CONFIGURED]  # a future next run follows the new schedule at once
    assert job.next_run_time.minute == 15 and job.next_run_time - datetime.now(UTC) <= timedelta(hours=1)


def test_a_schedules_grace_is_measured_on_the_daemons_clock(
    engine: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    """The misfire grace is the schedule's longest gap after the daemon's now (`services.clock`)."""
    february = "0 6 * 2 *"  # every day of February: after the 28th, eleven months until the next run
    settings = Settings(features={CONFIGURED: FeatureSettings(owner="team@example.com", schedule=february)})
    late_february = datetime(2026, 2, 25, 6, 30, tzinfo=UTC)
    for now, grace in ((late_february, timedelta(days=338)), (CLOCK, timedelta(days=1))):
        services = build_services(settings, engine=engine, clock=lambda now=now: now, scheduler=False)
        scheduler = schedulers(services)
        scheduler.start()
        assert scheduler.jobs()[CONFIGURED].misfire_grace_time == grace.total_seconds()
        scheduler.shutdown()


def test_never_two_cycles_of_one_feature_at_once(logged: Engine) -> None:
    gate = threading.Event()
    services, counting = make_services(logged, gate=gate)
    scheduler = FeatureScheduler(services)
    results: list[CycleOutcome | None] = []
    first, second = (
        threading.Thread(target=lambda: results.append(scheduler.run_due(LOGGED))) for _ in range(2)
    )
    first.start()
    assert counting.started.wait(30)  # the first run holds the feature's lock
    second.start()
    second.join(30)
    assert results == [None]  # skipped while the first runs
    gate.set()
    first.join(30)
    assert len(counting.runs) == 1
    assert len(results) == 2 and results[1] is not None


def test_shutdown_lets_a_running_cycle_finish(
    logged: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    services, counting = make_services(logged, delay=1.0)
    scheduler = schedulers(services)
    scheduler.start()
    scheduler.shutdown()
    set_next_run(logged, LOGGED, datetime.now(UTC) - timedelta(minutes=1))
    scheduler = schedulers(services)
    scheduler.start()
    assert counting.started.wait(10)
    scheduler.shutdown(wait=True)
    assert counting.finished == [(LOGGED, DUE)]
    with logged.connect() as conn:
        row = q.cycle_row(conn, LOGGED, DUE)
    assert row is not None and row["status"] == "done"


def test_a_cycle_interrupted_by_a_crash_is_finished_at_start(
    logged: Engine, schedulers: Callable[[Services], FeatureScheduler]
) -> None:
    services, counting = make_services(logged)
    first = schedulers(services)
    first.start()
    first.shutdown()
    counting.inner._begin(LOGGED, services.settings.feature(LOGGED), DUE)  # drew its sample, then died
    with logged.connect() as conn:
        row = q.cycle_row(conn, LOGGED, DUE)
    assert row is not None and row["status"] == "running"
    schedulers(services).start()
    wait_for(lambda: counting.finished == [(LOGGED, DUE)])
    with logged.connect() as conn:
        row = q.cycle_row(conn, LOGGED, DUE)
    assert row is not None and row["status"] == "done"
    assert counting.runs == [(LOGGED, DUE)]  # the other feature, not interrupted, did not run


def test_a_failing_cycle_is_logged_and_the_scheduler_goes_on(
    logged: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    services, counting = make_services(logged, fail=True)
    scheduler = FeatureScheduler(services)
    assert scheduler.run_due(LOGGED) is None
    assert "cycle summarizer failed" in caplog.text
    counting.fail = False
    outcome = scheduler.run_due(LOGGED)
    assert outcome is not None and outcome.at == DUE


def test_the_daemon_runs_the_configured_judges_and_webhooks(store_url: str) -> None:
    import httpx

    from monitor.daemon.app import daemon_services
    from monitor.judges.runner import JudgeLabeller
    from monitor.reporting.notify import Notifier

    settings = Settings(
        database_url=store_url,
        webhooks=({"name": "ops", "url": "http://127.0.0.1:9/hook"},),  # type: ignore[arg-type]
        features={
            CONFIGURED: {
                "owner": "team@example.com",
                "judges": ({"name": "short", "kind": "length", "max_chars": 500},),
            }
        },  # type: ignore[dict-item]
    )
    with httpx.Client() as http:
        services = daemon_services(settings, http)
        try:
            assert any(isinstance(labeller, JudgeLabeller) for labeller in services.runner.labellers)
            assert isinstance(services.notifier, Notifier)
            assert services.scheduler is not None
        finally:
            services.engine.dispose()
    plain = daemon_services(Settings(database_url=store_url))
    try:
        assert list(plain.runner.labellers) == [] and plain.notifier is None
    finally:
        plain.engine.dispose()
