"""The weekly digest, delivered: `aiqm report`'s page by email (SMTP) and by webhook.

`build_digest` makes the page and its plain-text summary for a feature's week; `email_message`
wraps them (text body, HTML attached); `send_email` speaks SMTP (STARTTLS and login when
configured, the credentials read from the environment variables the config names);
`post_webhooks` POSTs the digest to the named webhooks (json: the summary and the page; slack:
the summary as text). After each cycle (`aiqm cycle` and the scheduler alike),
`monitor.reporting.after_cycle` queues and sends the week's digest with `send_due`.

Each week's digest goes out once per channel (`email`, `webhook:<name>`): `send_due` queues the
latest done cycle's digest in `digest_deliveries` and sends what is due; a failed sending
(an SMTP error, a webhook answering other than 2xx) is tried again after RETRY_AFTER, by the
leader's scheduler every minute, then given up. A process that died while sending leaves a
claim that is tried again after STALE_SENDING: such a digest may arrive twice, but is not lost.
"""

from __future__ import annotations

import logging
import os
import smtplib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine

from monitor.config import DigestSettings, Settings, WebhookSettings
from monitor.reporting.report import collect_report, default_path, render_html, summary_text
from monitor.store import digest_queries as dq

log = logging.getLogger(__name__)

RETRY_AFTER = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
"""Waits before the second to sixth try of a failed sending; after the sixth it is given up."""
STALE_SENDING = timedelta(hours=1)
RECENT = timedelta(days=8)
"""Only a cycle done this recently gets its digest queued (not a year of them on the first run)."""


class DeliveryFailed(Exception):
    """A channel did not take the digest; the message says why."""


@dataclass(frozen=True)
class Digest:
    feature: str
    cycle_at: datetime
    subject: str
    text: str
    html: str
    filename: str
    owner: str


def build_digest(engine: Engine, settings: Settings, feature: str, week: date | None = None) -> Digest:
    report = collect_report(engine, settings, feature, week)
    cycle_at = report["cycle"]["at"]
    rate = report["cycle"]["pass_rate"]
    headline = "no labels" if rate is None else f"pass rate {100 * rate:.1f}%"
    firing = [a for a in report["alerts"] if a["state"] == "firing"]
    alarm = f", {len(firing)} trigger(s) firing" if firing else ""
    return Digest(
        feature=feature,
        cycle_at=cycle_at,
        subject=f"[aiqm] {feature} weekly review {cycle_at:%Y-%m-%d}: {headline}{alarm}",
        text=summary_text(report),
        html=render_html(report),
        filename=default_path(feature, cycle_at),
        owner=settings.feature(feature).owner,
    )


def recipients(owner: str, config: DigestSettings) -> list[str]:
    found = [owner] if config.to_owner and "@" in owner else []
    return list(dict.fromkeys([*found, *config.to]))


def email_message(digest: Digest, config: DigestSettings, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = config.sender
    message["To"] = ", ".join(to)
    message.set_content(digest.text + "\n\nThe full report, with charts, is attached.\n")
    message.add_attachment(digest.html, subtype="html", filename=digest.filename)
    return message


def send_email(digest: Digest, config: DigestSettings) -> str:
    """Send the digest; returns a note (who it went to, or why not)."""
    to = recipients(digest.owner, config)
    if not config.smtp_host or not to:
        return "email: not sent (no smtp_host or no recipient)"
    message = email_message(digest, config, to)
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_seconds) as smtp:
        if config.starttls:
            smtp.starttls()
        user = os.environ.get(config.username_env, "") if config.username_env else ""
        if user:
            smtp.login(user, os.environ.get(config.password_env, "") if config.password_env else "")
        smtp.send_message(message)
    return f"email: sent to {', '.join(to)}"


def _sinks(settings: Settings, config: DigestSettings, feature: str) -> list[WebhookSettings]:
    """The webhooks the digest of `feature` is posted to."""
    return [
        sink
        for sink in settings.webhooks
        if sink.name in config.webhooks and (not sink.features or feature in sink.features)
    ]


def post_webhook(digest: Digest, sink: WebhookSettings, http: httpx.Client) -> int:
    """POST the digest to one webhook; its HTTP status (httpx errors propagate)."""
    body = (
        {"text": f"*{digest.subject}*\n{digest.text}"}
        if sink.kind == "slack"
        else {
            "kind": "digest",
            "feature": digest.feature,
            "cycle_at": digest.cycle_at.isoformat(),
            "owner": digest.owner,
            "subject": digest.subject,
            "summary": digest.text,
            "html": digest.html,
        }
    )
    response = http.post(sink.resolved_url(), json=body, timeout=sink.timeout_seconds)
    return response.status_code


def post_webhooks(
    digest: Digest, settings: Settings, config: DigestSettings, http: httpx.Client
) -> list[str]:
    """POST the digest to each named webhook once; a note per webhook."""
    notes = []
    for sink in _sinks(settings, config, digest.feature):
        try:
            notes.append(f"webhook {sink.name}: HTTP {post_webhook(digest, sink, http)}")
        except httpx.HTTPError as exc:
            notes.append(f"webhook {sink.name}: failed ({type(exc).__name__})")
    return notes


def deliver_digest(
    engine: Engine,
    settings: Settings,
    feature: str,
    week: date | None = None,
    http: httpx.Client | None = None,
) -> list[str]:
    """Build and send one feature's digest by email and webhook, as configured; notes of what happened."""
    config = settings.digest
    if config is None:
        return []
    digest = build_digest(engine, settings, feature, week)
    notes = []
    try:
        notes.append(send_email(digest, config))
    except (OSError, smtplib.SMTPException) as exc:
        notes.append(f"email: failed ({exc})")
    if config.webhooks:
        if http is None:
            with httpx.Client() as client:
                notes += post_webhooks(digest, settings, config, client)
        else:
            notes += post_webhooks(digest, settings, config, http)
    return notes


def channels(settings: Settings, feature: str) -> list[str]:
    """Where the feature's digest goes: `email` (a server and a recipient) and `webhook:<name>`."""
    config = settings.digest
    if config is None:
        return []
    email = ["email"] if config.smtp_host and recipients(settings.feature(feature).owner, config) else []
    return email + [f"webhook:{sink.name}" for sink in _sinks(settings, config, feature)]


def _send(channel: str, digest: Digest, settings: Settings, http: httpx.Client) -> str:
    """Send on one channel; a note of what was done, or DeliveryFailed."""
    config = settings.digest
    assert config is not None
    if channel == "email":
        try:
            return send_email(digest, config)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"email: {type(exc).__name__}: {exc}") from None
    name = channel.removeprefix("webhook:")
    sink = next((s for s in _sinks(settings, config, digest.feature) if s.name == name), None)
    if sink is None:
        raise DeliveryFailed(f"{channel}: no such webhook for {digest.feature} in the config any more")
    try:
        status = post_webhook(digest, sink, http)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{channel}: {type(exc).__name__}") from None
    if not httpx.codes.is_success(status):
        raise DeliveryFailed(f"{channel}: HTTP {status}")
    return f"webhook {name}: HTTP {status}"


def send_due(
    engine: Engine,
    settings: Settings,
    now: datetime,
    features: list[str] | None = None,
    http: httpx.Client | None = None,
) -> list[str]:
    """Queue the latest done cycle's digest of each of `features` (default: every configured
    one), then send every delivery due; a note per sending. Raises only on store errors."""
    if settings.digest is None:
        return []
    names = list(settings.features) if features is None else features
    with engine.begin() as conn:
        for name in names:
            latest = dq.latest_done_cycle(conn, name)
            if latest is not None and latest >= now - RECENT:
                dq.enqueue(conn, name, latest, channels(settings, name), now)
        due = dq.due(conn, now, RETRY_AFTER, STALE_SENDING)
    if not due:
        return []
    if http is None:
        with httpx.Client() as client:
            return _send_all(engine, settings, due, now, client)
    return _send_all(engine, settings, due, now, http)


def _send_all(
    engine: Engine, settings: Settings, due: list[dq.Delivery], now: datetime, http: httpx.Client
) -> list[str]:
    notes: list[str] = []
    digests: dict[tuple[str, datetime], Digest] = {}
    for delivery in due:
        with engine.begin() as conn:
            if not dq.claim(conn, delivery, now):
                continue  # another process took it
        key = (delivery.feature, delivery.cycle_at)
        try:
            if key not in digests:
                digests[key] = build_digest(engine, settings, delivery.feature, delivery.cycle_at.date())
            note = _send(delivery.channel, digests[key], settings, http)
        except Exception as exc:
            error = str(exc) if isinstance(exc, DeliveryFailed) else f"{delivery.channel}: {exc!r}"
            final = delivery.attempts + 1 > len(RETRY_AFTER)
            with engine.begin() as conn:
                dq.record(conn, delivery.pk, "given_up" if final else "failed", error, now)
            log.warning(
                "the digest of %s for %s failed (%s); %s",
                delivery.feature,
                delivery.cycle_at.isoformat(),
                error,
                "given up" if final else "tried again later",
            )
            notes.append(f"{error}: failed, {'given up' if final else 'tried again later'}")
            continue
        with engine.begin() as conn:
            dq.record(conn, delivery.pk, "sent", None, now)
        notes.append(note)
    return notes
