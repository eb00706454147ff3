"""The weekly digest arrives: by email at a real SMTP server on loopback (aiosmtpd), a plain-text
body with the HTML report attached, and by webhook; the after-cycle steps send it (`aiqm cycle`
and the scheduler alike), once per channel and week, a failed sending tried again after its wait
and then given up."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from digest_history import FEATURE, build, settings_for
from sqlalchemy import Engine, select

from monitor.config import DigestSettings, Settings, WebhookSettings
from monitor.reporting.after_cycle import AfterCycleReport, after_cycles
from monitor.reporting.digest import RECENT, RETRY_AFTER, STALE_SENDING, deliver_digest, send_due
from monitor.reporting.notify import DeliveryResult, Notifier
from monitor.store import cycle_queries as q
from monitor.store import digest_queries as dq
from monitor.store.tables import digest_deliveries

if TYPE_CHECKING:
    from conftest import CliRunner


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port: the controller checks itself by connecting to it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def after_cycle(
    engine: Engine,
    settings: Settings,
    at: datetime,
    clock: Callable[[], datetime],
    http: httpx.Client | None = None,
) -> AfterCycleReport:
    """The steps after the feature's cycle at `at`, without a webhook notifier."""
    return after_cycles(engine, settings, [(FEATURE, at)], clock, None, FEATURE, http)


def with_digest(port: int, **extra: Any) -> Settings:
    digest = DigestSettings.model_validate(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "from": "aiqm@example.com",
            "to": ["lead@example.com"],
            **extra,
        }
    )
    return settings_for().model_copy(update={"digest": digest})


def test_the_digest_arrives_by_email(engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = with_digest(port)
    times = build(engine, settings, tmp_path, weeks=8)
    notes = deliver_digest(engine, settings, FEATURE)
    assert notes == ["email: sent to ops-ml@example.com, lead@example.com"]
    assert len(inbox.messages) == 1
    sender, to, message = inbox.messages[0]
    assert sender == "aiqm@example.com" and to == ["ops-ml@example.com", "lead@example.com"]
    assert message["Subject"].startswith(f"[aiqm] {FEATURE} weekly review {times[-1]:%Y-%m-%d}: pass rate")
    parts = list(message.walk())
    body = next(p for p in parts if p.get_content_type() == "text/plain" and not p.get_filename())
    text = body.get_payload(decode=True).decode()
    assert text.startswith(f"{FEATURE}: weekly review") and "Cost of the week:" in text
    attached = next(
        p for p in parts if p.get_filename() == f"aiqm-report-{FEATURE}-{times[-1]:%Y-%m-%d}.html"
    )
    assert attached.get_content_type() == "text/html"
    page = attached.get_payload(decode=True).decode()
    assert page.count("data:image/png;base64,") == 4 and "Launch brief: ticket-triage" in page


def test_after_the_cycle_the_digest_goes_to_the_webhook_too(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200)

    hook = WebhookSettings(name="team", url="http://hooks.invalid/aiqm")
    settings = with_digest(port, webhooks=["team"]).model_copy(update={"webhooks": (hook,)})
    times = build(engine, settings, tmp_path, weeks=6)
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        notes = deliver_digest(engine, settings, FEATURE, http=http)
    assert notes[-1] == "webhook team: HTTP 200"
    assert posted[0]["kind"] == "digest" and posted[0]["feature"] == FEATURE
    assert posted[0]["summary"].startswith(f"{FEATURE}: weekly review") and "<html" in posted[0]["html"]
    inbox.messages.clear()
    report = after_cycle(engine, settings_for(), times[-1], lambda: times[-1])
    assert report == AfterCycleReport() and inbox.messages == []  # no digest configured: nothing sent
    over = settings.model_copy(
        update={
            "webhooks": (),
            "features": {FEATURE: settings.feature(FEATURE).model_copy(update={"budget_usd_per_week": 0.01})},
        }
    )
    report = after_cycle(engine, over, times[-1], lambda: times[-1])
    assert [costs.feature for costs in report.over_budget] == [FEATURE]
    assert report.digest[0].startswith("email: sent") and len(inbox.messages) == 1


def test_the_scheduler_sends_the_digest_after_the_cycle(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    from datetime import timedelta

    from monitor.daemon.app import build_services
    from monitor.daemon.scheduler import FeatureScheduler

    inbox, port = smtp
    settings = with_digest(port)
    times = build(engine, settings, tmp_path, weeks=5)
    services = build_services(
        settings,
        engine=engine,
        clock=lambda: times[-1] + timedelta(minutes=5),
        scheduler=False,
        notifier=None,
    )
    scheduler = FeatureScheduler(services, sync_seconds=3600)
    try:
        outcome = scheduler.run_due(FEATURE)
    finally:
        scheduler.shutdown(wait=True)
    assert outcome is not None and outcome.at == times[-1]
    assert len(inbox.messages) == 1
    assert inbox.messages[0][2]["Subject"].startswith(f"[aiqm] {FEATURE} weekly review {times[-1]:%Y-%m-%d}")


def test_aiqm_cycle_sends_the_digest_as_the_scheduler_does(
    engine: Engine,
    store_url: str,
    tmp_path: Path,
    smtp: tuple[Inbox, int],
    aiqm: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = smtp
    times = build(engine, settings_for(), tmp_path / "history", weeks=5)
    at = times[-1] + timedelta(days=7)  # the next weekly cycle: `aiqm cycle` runs it
    monkeypatch.setattr("monitor.cli.cycle.utc_now", lambda: at + timedelta(minutes=5))
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        f"features:\n  {FEATURE}:\n    owner: ops-ml@example.com\n"
        f"digest:\n  smtp_host: 127.0.0.1\n  smtp_port: {port}\n  from: aiqm@example.com\n"
    )
    env = {"AIQM_DATABASE_URL": store_url}
    done = aiqm("cycle", "--feature", FEATURE, "--config", config, env=env)
    assert done.code == 0, done.err
    assert json.loads(done.out)["at"] == f"{at:%Y-%m-%dT%H:%M:%SZ}"
    assert "digest: email: sent to ops-ml@example.com" in done.err
    assert len(inbox.messages) == 1
    assert inbox.messages[0][2]["Subject"].startswith(f"[aiqm] {FEATURE} weekly review {at:%Y-%m-%d}")
    again = aiqm("cycle", "--feature", FEATURE, "--config", config, env=env)
    assert again.code == 0 and "digest:" not in again.err and len(inbox.messages) == 1  # once a week


class DownNotifier(Notifier):
    def deliver_new(self, feature: str | None = None) -> list[DeliveryResult]:
        raise RuntimeError("the receiver is down")


def test_a_failing_step_after_the_cycle_is_noted_and_the_others_still_run(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = with_digest(port)
    times = build(engine, settings, tmp_path, weeks=5)
    over = settings.model_copy(
        update={
            "features": {FEATURE: settings.feature(FEATURE).model_copy(update={"budget_usd_per_week": 0.01})}
        }
    )
    clock = lambda: times[-1] + timedelta(minutes=5)  # noqa: E731
    with httpx.Client() as http:
        notifier = DownNotifier(engine, over, http, clock)
        report = after_cycles(engine, over, [(FEATURE, times[-1])], clock, notifier, FEATURE)
    assert report.failed == (f"notifications of {FEATURE}: RuntimeError('the receiver is down')",)
    assert len(report.over_budget) == 1 and len(inbox.messages) == 1
    lines = report.lines()
    assert lines[0].startswith(f"{FEATURE}: the week cost $") and lines[0].endswith("over its budget $0.01")
    assert lines[1:] == [
        "digest: email: sent to ops-ml@example.com, lead@example.com",
        f"failed: notifications of {FEATURE}: RuntimeError('the receiver is down')",
    ]
    with engine.connect() as conn:  # the budget event waits for the next notifier
        assert [e["trigger"] for e in q.trigger_event_rows(conn, FEATURE)].count("budget") == 1


def test_aiqm_digest_sends_it_now(
    engine: Engine, store_url: str, tmp_path: Path, smtp: tuple[Inbox, int], aiqm: CliRunner
) -> None:
    inbox, port = smtp
    times = build(engine, settings_for(), tmp_path / "history", weeks=5)
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        f"features:\n  {FEATURE}:\n    owner: ops-ml@example.com\n"
        f"digest:\n  smtp_host: 127.0.0.1\n  smtp_port: {port}\n  from: aiqm@example.com\n"
    )
    env = {"AIQM_DATABASE_URL": store_url}
    done = aiqm("digest", "--feature", FEATURE, "--week", f"{times[2]:%Y-%m-%d}", "--config", config, env=env)
    assert done.code == 0, done.err
    assert done.out.strip() == f"{FEATURE}: email: sent to ops-ml@example.com"
    assert len(inbox.messages) == 1 and f"{times[2]:%Y-%m-%d}" in inbox.messages[0][2]["Subject"]
    config.write_text(f"features:\n  {FEATURE}:\n    owner: ops-ml@example.com\n")
    done = aiqm("digest", "--feature", FEATURE, "--config", config, env=env)
    assert done.code == 2 and "no `digest` block" in done.err


# --------------------------------------------------------------------------- once, and retried


class Hook:
    """A webhook receiver (httpx's mock transport) answering the statuses it is given in turn."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(json.loads(request.content))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status)


def with_hook(port: int) -> Settings:
    hook = WebhookSettings(name="team", url="http://hooks.invalid/aiqm")
    return with_digest(port, webhooks=["team"]).model_copy(update={"webhooks": (hook,)})


def deliveries(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(digest_deliveries.c.channel, digest_deliveries.c.status, digest_deliveries.c.attempts)
        ).all()
    return sorted((channel, status, attempts) for channel, status, attempts in rows)


def test_each_weeks_digest_goes_out_once_per_channel(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = with_hook(port)
    times = build(engine, settings, tmp_path, weeks=5)
    now = times[-1] + timedelta(minutes=5)
    hook = Hook(200)
    with httpx.Client(transport=httpx.MockTransport(hook)) as http:
        notes = after_cycle(engine, settings, times[-1], lambda: now, http).digest
        assert notes == ("email: sent to ops-ml@example.com, lead@example.com", "webhook team: HTTP 200")
        # The cycle's hook again (a rerun), and the leader's minutely job: nothing more is sent.
        assert after_cycle(engine, settings, times[-1], lambda: now, http).digest == ()
        assert send_due(engine, settings, now + timedelta(minutes=1), http=http) == []
    assert len(inbox.messages) == 1 and len(hook.received) == 1
    assert hook.received[0]["cycle_at"] == times[-1].isoformat()
    assert deliveries(engine) == [("email", "sent", 1), ("webhook:team", "sent", 1)]


def test_a_failed_sending_is_tried_again_after_its_wait(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    _inbox, port = smtp
    settings = with_hook(port)
    times = build(engine, settings, tmp_path, weeks=5)
    now = times[-1] + timedelta(minutes=5)
    hook = Hook(503, 500, 204)
    with httpx.Client(transport=httpx.MockTransport(hook)) as http:
        notes = after_cycle(engine, settings, times[-1], lambda: now, http).digest
        assert "webhook:team: HTTP 503: failed, tried again later" in notes
        assert ("webhook:team", "failed", 1) in deliveries(engine)
        assert send_due(engine, settings, now + RETRY_AFTER[0] - timedelta(seconds=1), http=http) == []
        later = now + RETRY_AFTER[0]
        assert send_due(engine, settings, later, http=http) == [
            "webhook:team: HTTP 500: failed, tried again later"
        ]
        assert send_due(engine, settings, later + RETRY_AFTER[1], http=http) == ["webhook team: HTTP 204"]
        assert send_due(engine, settings, later + RETRY_AFTER[1] + timedelta(days=1), http=http) == []
    assert len(hook.received) == 3
    assert deliveries(engine) == [("email", "sent", 1), ("webhook:team", "sent", 3)]


def test_a_channel_that_keeps_failing_is_given_up(engine: Engine, tmp_path: Path) -> None:
    hook_settings = WebhookSettings(name="team", url="http://hooks.invalid/aiqm")
    digest = DigestSettings.model_validate({"webhooks": ["team"]})  # no email: the webhook alone
    settings = settings_for().model_copy(update={"digest": digest, "webhooks": (hook_settings,)})
    times = build(engine, settings, tmp_path, weeks=5)
    now = times[-1] + timedelta(minutes=5)
    hook = Hook(500)
    with httpx.Client(transport=httpx.MockTransport(hook)) as http:
        notes = send_due(engine, settings, now, http=http)
        for wait in RETRY_AFTER:
            now += wait
            notes += send_due(engine, settings, now, http=http)
        assert send_due(engine, settings, now + timedelta(days=30), http=http) == []
    assert len(hook.received) == len(RETRY_AFTER) + 1
    assert notes[-1] == "webhook:team: HTTP 500: failed, given up"
    assert deliveries(engine) == [("webhook:team", "given_up", len(RETRY_AFTER) + 1)]


def test_the_leaders_job_sends_a_digest_the_cycles_hook_never_sent(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """The daemon died after the cycle was stored and before its digest went out."""
    inbox, port = smtp
    settings = with_digest(port)
    times = build(engine, settings, tmp_path, weeks=5)
    assert send_due(engine, settings, times[-1] + RECENT + timedelta(minutes=1)) == []  # too old
    assert send_due(engine, settings, times[-1] + timedelta(hours=3)) == [
        "email: sent to ops-ml@example.com, lead@example.com"
    ]
    assert len(inbox.messages) == 1 and f"{times[-1]:%Y-%m-%d}" in inbox.messages[0][2]["Subject"]


def test_a_sending_claimed_by_a_process_that_died_is_tried_again_later(
    engine: Engine, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = with_digest(port)
    times = build(engine, settings, tmp_path, weeks=5)
    now = times[-1] + timedelta(minutes=5)
    with engine.begin() as conn:
        dq.enqueue(conn, FEATURE, times[-1], ["email"], now)
        (queued,) = dq.due(conn, now, RETRY_AFTER, STALE_SENDING)
        assert dq.claim(conn, queued, now)  # the process that died
        assert not dq.claim(conn, queued, now)  # a second claimer of the same row loses
    assert send_due(engine, settings, now + STALE_SENDING - timedelta(minutes=1)) == []
    assert send_due(engine, settings, now + STALE_SENDING)[0].startswith("email: sent")
    assert len(inbox.messages) == 1 and deliveries(engine) == [("email", "sent", 2)]
