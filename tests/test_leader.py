"""Leader election of the scheduler (monitor.daemon.leader): SQLite always leads; on PostgreSQL one
holder of the advisory lock at a time, and a lost lock connection hands the leadership over."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.daemon.app import build_services
from monitor.daemon.leader import Leadership


def _wait(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_one_leader_at_a_time_and_a_lost_connection_hands_over(engine: Engine) -> None:
    events: list[str] = []
    first = Leadership(
        engine, lambda: events.append("first+"), lambda: events.append("first-"), retry_seconds=0.1
    )
    second = Leadership(
        engine, lambda: events.append("second+"), lambda: events.append("second-"), retry_seconds=0.1
    )
    try:
        first.start()
        assert first.leader and events == ["first+"]
        second.start()
        time.sleep(0.3)
        if engine.dialect.name != "postgresql":  # one process per SQLite store: it always leads
            assert second.leader
            return
        assert not second.leader and events == ["first+"]
        conn = first._conn
        assert conn is not None
        # The cut leader then retries every 2 s: the second, asking every 0.1 s, gets the lock
        # first, so which replica leads next is not left to how their retries line up.
        first.retry_seconds = 2.0
        with engine.connect() as admin:  # the leader's session dies, as when its process is killed
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        assert _wait(lambda: second.leader), events
        assert _wait(lambda: not first.leader), events
        assert events[:2] == ["first+", "first-"] or set(events) == {"first+", "first-", "second+"}
        assert not first.leader  # the lock is the second's now; the first keeps trying
        time.sleep(0.3)
        assert not first.leader and second.leader
    finally:
        first.stop()
        second.stop()
    assert not first.leader and not second.leader


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_leader_confirms_before_acting_and_steps_down_at_once_when_its_lock_is_gone(engine: Engine) -> None:
    """A network cut: PostgreSQL ended the leader's session long before the leader's next tick
    (an hour away here); `confirm`, asked before each cycle, notices and steps down then."""
    events: list[str] = []
    leader = Leadership(engine, lambda: events.append("+"), lambda: events.append("-"), retry_seconds=3600)
    try:
        leader.start()
        assert leader.leader and leader.confirm() and events == ["+"]
        conn = leader._conn
        assert conn is not None
        with engine.connect() as admin:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        assert leader.leader  # nobody has told it yet
        assert not leader.confirm()
        assert not leader.leader and events == ["+", "-"]
        assert not leader.confirm() and events == ["+", "-"]  # stepped down once
    finally:
        leader.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_daemon_leads_on_sqlite_and_says_so_in_metrics(engine: Engine) -> None:
    services = build_services(Settings(), engine=engine)
    scheduler = services.scheduler
    assert scheduler is not None and services.registry is not None
    assert b"aiqm_scheduler_leader 0.0" in generate_latest(services.registry)
    scheduler.start()
    try:
        assert scheduler.leader and scheduler.running and scheduler.active
        assert b"aiqm_scheduler_leader 1.0" in generate_latest(services.registry)
    finally:
        scheduler.shutdown()
    assert not scheduler.leader and not scheduler.running and not scheduler.active


def test_replicas_share_the_review_session_secret(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from monitor.errors import MonitorError

    first = build_services(Settings(), engine=engine, scheduler=False)
    second = build_services(Settings(), engine=engine, scheduler=False)
    assert len(first.session_secret) == 32 and first.session_secret == second.session_secret
    from_env = Settings(server={"session_secret_env": "REVIEW_SESSION_SECRET"})
    monkeypatch.setenv("REVIEW_SESSION_SECRET", "a shared secret")
    expected = hashlib.sha256(b"a shared secret").digest()
    assert build_services(from_env, engine=engine, scheduler=False).session_secret == expected
    monkeypatch.delenv("REVIEW_SESSION_SECRET")
    with pytest.raises(MonitorError, match="REVIEW_SESSION_SECRET"):
        build_services(from_env, engine=engine, scheduler=False)
