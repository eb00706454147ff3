"""The weekly digest, delivered: `aiqm report`'s page by email (SMTP) and by webhook.

`build_digest` makes the page and its plain-text summary for a feature's week; `email_message`
wraps them (text body, HTML attached); `send_email` speaks SMTP (STARTTLS and login when
configured, the credentials read from the environment variables the config names);
`post_webhooks` POSTs the digest to the named webhooks (json: the summary and the page; slack:
the summary as text). `after_cycle` is what the scheduler runs after each feature's cycle: the
budget check (`monitor.costs.check_budget`), then the digest when `digest` is configured. It
never raises: a failed delivery is logged and returned as a note.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine

from monitor.config import DigestSettings, Settings
from monitor.report import collect_report, default_path, render_html, summary_text

log = logging.getLogger(__name__)


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


def recipients(digest: Digest, config: DigestSettings) -> list[str]:
    found = [digest.owner] if config.to_owner and "@" in digest.owner else []
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
    to = recipients(digest, config)
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


def post_webhooks(
    digest: Digest, settings: Settings, config: DigestSettings, http: httpx.Client
) -> list[str]:
    """POST the digest to each named webhook once; a note per webhook."""
    notes = []
    for sink in settings.webhooks:
        if sink.name not in config.webhooks or (sink.features and digest.feature not in sink.features):
            continue
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
        try:
            response = http.post(sink.resolved_url(), json=body, timeout=sink.timeout_seconds)
            notes.append(f"webhook {sink.name}: HTTP {response.status_code}")
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


def after_cycle(
    engine: Engine, settings: Settings, feature: str, at: datetime, clock: Callable[[], datetime]
) -> list[str]:
    """After a scheduled cycle: the budget check, then the weekly digest. Never raises."""
    from monitor.costs import check_budget
    from monitor.store.cycle_queries import cycle_row

    notes: list[str] = []
    try:
        with engine.connect() as conn:
            row = cycle_row(conn, feature, at)
        if row is not None and check_budget(engine, settings, feature, row, clock()) is not None:
            notes.append("budget: over")
        if settings.digest is not None and row is not None:
            notes += deliver_digest(engine, settings, feature, at.date())
    except Exception:
        log.exception("the budget check or digest of %s after the cycle at %s failed", feature, at)
        return notes
    for note in notes:
        log.info("%s after the cycle at %s: %s", feature, at.isoformat(), note)
    return notes
