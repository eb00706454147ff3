"""Webhooks against a real HTTP receiver on loopback, on both stores: payloads, retries with
backoff, permanent failures, filters, old transitions, and one delivery per transition and
webhook even when two notifiers race."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.demo.simulate import HistorySpec, write_history
from monitor.reporting.notify import LATER_ROUNDS, STALE_CLAIM, Notifier
from monitor.store import cycle_queries as q
from monitor.store.engine import make_engine
from monitor.store.tables import notification_deliveries

if TYPE_CHECKING:
    from conftest import CliRunner

NOW = datetime(2026, 3, 2, 6, 5, tzinfo=UTC)
CYCLE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """Records every POST; `statuses[path]` is a list of statuses to answer in turn (then 200)."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def bodies(self, path: str) -> list[Any]:
        return [body for p, _, body in self.received if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(state.delay)
            with state.lock:
                state.received.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw))
                )
                queue = state.statuses.get(self.path)
                status = queue.pop(0) if queue else state.always.get(self.path, 200)
            body = b'{"ok": true}' if status < 400 else b"receiver unhappy"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    state.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.httpd.daemon_threads = True
    thread = threading.Thread(target=state.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.httpd.shutdown()
        state.httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def add_events(engine: Engine, count: int = 1, feature: str = "replies", at: datetime = NOW) -> list[int]:
    rows = [
        {
            "feature": feature,
            "trigger": "fallback" if i == 0 else "retrain",
            "scope": "all" if i == 0 else f"segment:language=l{i}",
            "from_state": "pending",
            "to_state": "firing",
            "at": at,
            "cycle_at": CYCLE,
            "owner": "U024BE7LH" if i == 0 else "team@example.com",
            "reason": "pass rate 71.0% <below> the floor & falling",
            "evidence": {"z": 3.1, "n": 120},
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        q.add_trigger_events(conn, rows)
        return [r["pk"] for r in q.trigger_event_rows(conn, feature)][-count:]


def deliveries(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(notification_deliveries).order_by(notification_deliveries.c.pk)
        return [dict(r) for r in conn.execute(query).mappings()]


def settings_with(*hooks: dict[str, Any]) -> Settings:
    return Settings.model_validate({"webhooks": list(hooks)})


def notifier(
    engine: Engine, settings: Settings, http: httpx.Client, sleeps: list[float] | None = None
) -> Notifier:
    recorded = sleeps if sleeps is not None else []
    return Notifier(engine, settings, http, lambda: NOW, sleep=recorded.append)


def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_it(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    [pk] = add_events(engine)
    receiver.statuses["/hook"] = [500, 503]
    settings = settings_with(
        {"name": "ops", "url": receiver.url("/hook"), "max_attempts": 4, "backoff_seconds": 2}
    )
    sleeps: list[float] = []
    [result] = notifier(engine, settings, http, sleeps).deliver_new()
    assert (result.status, result.attempts, result.event_pk, result.sink) == ("delivered", 3, pk, "ops")
    assert len(sleeps) == 2 and 1 <= sleeps[0] <= 2 and 2 <= sleeps[1] <= 4  # doubling, with jitter
    bodies = receiver.bodies("/hook")
    assert len(bodies) == 3 and bodies[0] == bodies[-1]
    assert bodies[-1] == {
        "feature": "replies",
        "trigger": "fallback",
        "scope": "all",
        "from": "pending",
        "to": "firing",
        "reason": "pass rate 71.0% <below> the floor & falling",
        "evidence": {"z": 3.1, "n": 120},
        "owner": "U024BE7LH",
        "at": "2026-03-02T06:05:00Z",
        "cycle_at": "2026-03-02T06:00:00Z",
    }
    headers = receiver.received[-1][1]
    assert headers["idempotency-key"] == f"aiqm-{pk}-ops"
    [row] = deliveries(engine)
    assert (row["status"], row["attempts"], row["event_pk"], row["sink"]) == ("delivered", 3, pk, "ops")
    assert row["delivered_at"] == NOW and row["last_error"].startswith("HTTP 503")
    # Nothing new: nothing sent again.
    assert notifier(engine, settings, http).deliver_new() == []
    assert len(receiver.received) == 3


def test_a_receiver_that_stays_down_gets_later_rounds_then_is_given_up(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    add_events(engine)
    receiver.always["/down"] = 500
    settings = settings_with({"name": "down", "url": receiver.url("/down"), "max_attempts": 3})
    clock = [NOW]
    sleeps: list[float] = []
    later = Notifier(engine, settings, http, lambda: clock[0], sleep=sleeps.append)
    [result] = later.deliver_new()
    assert (result.status, result.attempts) == ("waiting", 3)
    assert result.error == "HTTP 500: receiver unhappy"
    assert len(sleeps) == 2 and len(receiver.received) == 3
    [row] = deliveries(engine)
    assert (row["status"], row["attempts"], row["delivered_at"]) == ("waiting", 3, None)
    assert (
        row["next_attempt_at"] == NOW + LATER_ROUNDS[0] and row["last_error"] == "HTTP 500: receiver unhappy"
    )
    clock[0] = NOW + LATER_ROUNDS[0] - timedelta(seconds=1)
    assert later.deliver_new() == []  # not yet
    for round_number, wait in enumerate(LATER_ROUNDS, start=2):
        clock[0] = deliveries(engine)[0]["next_attempt_at"]
        assert clock[0] is not None and clock[0] >= NOW + wait
        [result] = later.deliver_new()
        assert result.attempts == 3 * round_number
        assert result.status == ("waiting" if round_number <= len(LATER_ROUNDS) else "failed")
    [row] = deliveries(engine)
    assert (row["status"], row["attempts"]) == ("failed", 3 * (len(LATER_ROUNDS) + 1))
    clock[0] += timedelta(days=30)
    assert later.deliver_new() == []  # failed is final
    assert len(receiver.received) == 3 * (len(LATER_ROUNDS) + 1)


def test_a_receiver_back_up_takes_the_waiting_transition(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    [pk] = add_events(engine)
    receiver.statuses["/flaky"] = [503, 503]
    settings = settings_with({"name": "flaky", "url": receiver.url("/flaky"), "max_attempts": 2})
    clock = [NOW]
    later = Notifier(engine, settings, http, lambda: clock[0], sleep=lambda _s: None)
    assert [r.status for r in later.deliver_new()] == ["waiting"]
    clock[0] = NOW + LATER_ROUNDS[0]
    [result] = later.deliver_new()
    assert (result.status, result.attempts, result.event_pk) == ("delivered", 3, pk)
    [row] = deliveries(engine)
    assert (row["status"], row["delivered_at"], row["next_attempt_at"]) == ("delivered", clock[0], None)


def test_a_transition_a_dead_notifier_was_sending_is_sent_once_its_claim_is_stale(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    [pk] = add_events(engine)
    settings = settings_with({"name": "ops", "url": receiver.url("/hook")})
    with engine.begin() as conn:  # what a notifier killed mid-send leaves behind
        conn.execute(
            notification_deliveries.insert().values(
                event_pk=pk,
                sink="ops",
                feature="replies",
                status="sending",
                attempts=0,
                created_at=NOW,
                claimed_at=NOW,
            )
        )
    clock = [NOW + STALE_CLAIM - timedelta(minutes=1)]
    later = Notifier(engine, settings, http, lambda: clock[0], sleep=lambda _s: None)
    assert later.deliver_new() == [] and receiver.received == []  # it may still be sending
    clock[0] = NOW + STALE_CLAIM
    assert [r.status for r in later.deliver_new()] == ["delivered"]
    assert len(receiver.received) == 1
    assert receiver.received[0][1]["idempotency-key"] == f"aiqm-{pk}-ops"  # a receiver can drop a copy


def test_a_client_error_is_not_retried(engine: Engine, receiver: Receiver, http: httpx.Client) -> None:
    add_events(engine)
    receiver.always["/gone"] = 404
    settings = settings_with({"name": "gone", "url": receiver.url("/gone"), "max_attempts": 5})
    [result] = notifier(engine, settings, http).deliver_new()
    assert (result.status, result.attempts) == ("failed", 1)


def test_slack_messages_mention_the_owner_and_escape_text(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    add_events(engine, count=2)
    settings = settings_with({"name": "slack", "kind": "slack", "url": receiver.url("/slack")})
    results = notifier(engine, settings, http).deliver_new()
    assert [r.status for r in results] == ["delivered", "delivered"]
    first, second = receiver.bodies("/slack")
    assert set(first) == {"text", "blocks"}
    assert "<@U024BE7LH>" in first["text"] and "replies: fallback [all] pending → firing" in first["text"]
    section = first["blocks"][1]["text"]["text"]
    assert "&lt;below&gt; the floor &amp; falling" in section and "<below>" not in section
    assert [b["type"] for b in first["blocks"]] == ["header", "section", "context"]
    assert "team@example.com" in second["text"]


def test_webhooks_take_only_their_features_and_the_one_asked_for(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    add_events(engine, feature="replies")
    add_events(engine, feature="triage")
    settings = settings_with(
        {"name": "all", "url": receiver.url("/all")},
        {"name": "triage-only", "url": receiver.url("/triage"), "features": ["triage"]},
    )
    first = notifier(engine, settings, http).deliver_new("replies")
    assert [(r.sink, r.feature) for r in first] == [("all", "replies")]
    rest = notifier(engine, settings, http).deliver_new()
    assert sorted((r.sink, r.feature) for r in rest) == [("all", "triage"), ("triage-only", "triage")]
    assert [b["feature"] for b in receiver.bodies("/triage")] == ["triage"]


def test_old_transitions_are_recorded_as_skipped_not_sent(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    add_events(engine, at=NOW - timedelta(days=3))
    settings = settings_with({"name": "new", "url": receiver.url("/new"), "max_age_hours": 24})
    [result] = notifier(engine, settings, http).deliver_new()
    assert (result.status, result.attempts) == ("skipped", 0)
    assert receiver.received == []
    assert [r["status"] for r in deliveries(engine)] == ["skipped"]


def test_a_url_from_the_environment(
    engine: Engine, receiver: Receiver, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_events(engine, count=2)
    settings = settings_with({"name": "env", "url_env": "HOOK_URL"})
    monkeypatch.setenv("HOOK_URL", receiver.url("/env"))
    assert [r.status for r in notifier(engine, settings, http).deliver_new()] == ["delivered"] * 2
    add_events(engine)
    monkeypatch.delenv("HOOK_URL")
    [missing] = notifier(engine, settings, http).deliver_new()
    assert missing.status == "failed" and missing.error is not None and "HOOK_URL" in missing.error


def test_two_notifiers_racing_send_each_transition_once_per_webhook(
    store_url: str, receiver: Receiver
) -> None:
    engines = [make_engine(store_url) for _ in range(2)]
    try:
        add_events(engines[0], count=6)
        receiver.delay = 0.01
        settings = settings_with(
            {"name": "a", "url": receiver.url("/a")},
            {"name": "b", "kind": "slack", "url": receiver.url("/b")},
        )
        barrier = threading.Barrier(2)
        results: list[list[Any]] = [[], []]
        errors: list[BaseException] = []

        def run(index: int) -> None:
            try:
                with httpx.Client() as client:
                    racer = Notifier(engines[index], settings, client, lambda: NOW, sleep=lambda _s: None)
                    barrier.wait(timeout=10)
                    results[index] = racer.deliver_new()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert len(receiver.bodies("/a")) == 6 and len(receiver.bodies("/b")) == 6
        sent = [(r.event_pk, r.sink) for rs in results for r in rs]
        assert len(sent) == len(set(sent)) == 12
        rows = deliveries(engines[0])
        assert len(rows) == 12 and {r["status"] for r in rows} == {"delivered"}
        assert len({(r["event_pk"], r["sink"]) for r in rows}) == 12
    finally:
        for engine in engines:
            engine.dispose()


def test_aiqm_cycle_notifies_the_webhooks(
    tmp_path: Path, aiqm: CliRunner, store_url: str, receiver: Receiver
) -> None:
    spec = HistorySpec("replies", weeks=1, volume=40, pass_rate=0.9, seed=3)
    outputs, _, _ = write_history(spec, tmp_path / "history")
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        "features:\n  replies:\n    owner: replies-team\n"
        f"webhooks:\n  - {{name: ops, url: '{receiver.url('/ops')}', max_age_hours: 100000}}\n",
        encoding="utf-8",
    )
    env = {"AIQM_DATABASE_URL": store_url}
    assert aiqm("ingest", outputs, env=env).code == 0
    done = aiqm("cycle", "--at", "2026-01-12T06:00:00Z", "--config", config, env=env)
    assert done.code == 0, done.err
    json.loads(done.out)  # standard output stays the cycle's JSON
    [body] = receiver.bodies("/ops")
    assert (body["feature"], body["trigger"], body["to"], body["owner"]) == (
        "replies",
        "stale",
        "pending",
        "replies-team",
    )
    assert "webhook ops: replies stale[all] -> pending: delivered after 1 attempt(s)" in done.err
    again = aiqm("cycle", "--at", "2026-01-12T06:00:00Z", "--config", config, env=env)
    assert again.code == 0 and len(receiver.received) == 1


def test_the_leader_sends_due_notifications_every_minute(
    engine: Engine, receiver: Receiver, http: httpx.Client
) -> None:
    from monitor.daemon.app import build_services
    from monitor.daemon.scheduler import NOTIFY_SECONDS

    add_events(engine)
    settings = settings_with({"name": "ops", "url": receiver.url("/hook")})
    services = build_services(
        settings, engine=engine, clock=lambda: NOW, notifier=notifier(engine, settings, http)
    )
    scheduler = services.scheduler
    assert scheduler is not None
    scheduler.start()
    try:
        job = scheduler._scheduler.get_job("aiqm:notify")
        assert job is not None and job.trigger.interval.total_seconds() == NOTIFY_SECONDS
        scheduler.notify()
    finally:
        scheduler.shutdown()
    assert len(receiver.received) == 1 and deliveries(engine)[0]["status"] == "delivered"
