"""Webhooks for trigger transitions: generic JSON or Slack-compatible, retried, each delivery recorded.

Every row of `trigger_events` (one transition of one trigger: ok -> pending -> firing ->
resolved ...) is delivered once to every configured webhook whose `features` include the
event's feature. `Notifier.deliver_new` first records a `notification_deliveries` row for each
(event, webhook) that has none, with one INSERT ... SELECT ... ON CONFLICT DO NOTHING: the
unique (event_pk, sink) constraint makes that row the one delivery, even when two notifiers
(two daemons, or the daemon and `aiqm cycle`) run at once. It then claims each pending row by
moving it to `sending` with an UPDATE that only one notifier can win, and POSTs it, retrying
timeouts, network errors, 429 and 5xx with exponential backoff and jitter up to
`max_attempts`; other 4xx answers are not retried. A receiver still down after those tries
gets another round later (status `waiting` until `next_attempt_at`, after each of
LATER_ROUNDS), then the delivery is `failed`; the leader's scheduler runs `deliver_new` every
minute, so a waiting round is not a week late. Attempts, the last error and the outcome
(`delivered` with its time, or `failed`) are recorded. A transition older than the webhook's
`max_age_hours` when the webhook first sees it (a webhook added to an old store) is recorded
as `skipped`, not sent. A notifier killed in the middle of a send leaves its row `sending`; it
is sent again once the claim is STALE_CLAIM old, so a transition is not lost, and the
`Idempotency-Key` header (the same on every try) lets a receiver drop a second copy.

The payload is addressed to the event's owner (the feature's owner; its decision owner for
`fallback`). Webhook URLs are never logged or recorded (a Slack URL is a secret).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from monitor.config import Settings, WebhookSettings
from monitor.store import notification_queries
from monitor.store.notification_queries import PendingDelivery, TriggerEvent

__all__ = ["DeliveryResult", "Notifier", "json_payload", "slack_payload"]

log = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 60.0
RETRY_STATUSES = frozenset({408, 425, 429})
LATER_ROUNDS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=12))
"""Waits before the second to fifth round of tries of a receiver that stayed down."""
STALE_CLAIM = timedelta(hours=1)


@dataclass(frozen=True)
class DeliveryResult:
    event_pk: int
    sink: str
    feature: str
    trigger: str
    scope: str
    to_state: str
    status: str
    """delivered, waiting (another round later), failed or skipped"""
    attempts: int
    error: str | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def json_payload(event: TriggerEvent) -> dict[str, Any]:
    """The generic webhook's body: the transition as one flat JSON object."""
    return {
        "feature": event.feature,
        "trigger": event.trigger,
        "scope": event.scope,
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "evidence": event.evidence or {},
        "owner": event.owner,
        "at": _iso(event.at),
        "cycle_at": _iso(event.cycle_at),
    }


_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{6,}$")
_ICONS = {"firing": ":rotating_light:", "pending": ":warning:", "resolved": ":white_check_mark:"}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_owner(owner: str) -> str:
    """A Slack member or group id is mentioned (`<@U123>`); any other owner is named."""
    if _SLACK_ID.match(owner):
        return f"<!subteam^{owner}>" if owner.startswith("S") else f"<@{owner}>"
    return _slack_escape(owner)


def slack_payload(event: TriggerEvent) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` (the notification's fallback) and Block Kit `blocks`."""
    icon = _ICONS.get(event.to_state, ":information_source:")
    owner = _slack_owner(str(event.owner))
    trigger, scope = _slack_escape(str(event.trigger)), _slack_escape(str(event.scope))
    change = f"{event.from_state} → {event.to_state}"
    what = f"{_slack_escape(str(event.feature))}: {trigger} [{scope}] {change}"
    text = f"{icon} {what} (for {owner})"
    reason = _slack_escape(str(event.reason))
    cycle = _iso(event.cycle_at)
    context = f"for {owner} · at {_iso(event.at)}" + (f" · cycle {cycle}" if cycle else "")
    return {
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": f"{event.feature}: {event.trigger} {event.to_state}"[:150],
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        f"{icon} *{trigger}* `{scope}`: {event.from_state} → *{event.to_state}*\n{reason}"
                    )[:3000],
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]},
        ],
    }


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class Notifier:
    """Delivers new trigger transitions to the configured webhooks (see the module's docstring)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        http: httpx.Client,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()

    def deliver_new(self, feature: str | None = None) -> list[DeliveryResult]:
        """Record and send every transition (of `feature`, or of all) not yet handed to each webhook."""
        results: list[DeliveryResult] = []
        for sink in self.settings.webhooks:
            results += self._enqueue(sink, feature)
        for sink in self.settings.webhooks:
            results += self._send_pending(sink, feature)
        return results

    # -- recording

    def _enqueue(self, sink: WebhookSettings, feature: str | None) -> list[DeliveryResult]:
        """One delivery row per new (event, sink): pending, or skipped when the event is too old."""
        now = self.clock()
        cutoff = now - timedelta(hours=sink.max_age_hours)
        with self.engine.begin() as conn:
            skipped = notification_queries.enqueue(conn, sink.name, sink.features, feature, cutoff, now)
        return [_result(sink, event, "skipped", 0) for event in skipped]

    # -- sending

    def _send_pending(self, sink: WebhookSettings, feature: str | None) -> list[DeliveryResult]:
        now = self.clock()
        with self.engine.connect() as conn:
            pending = notification_queries.due(conn, sink.name, sink.features, feature, now, STALE_CLAIM)
        results = []
        for delivery in pending:
            if not self._claim(delivery, now):
                continue  # another notifier took it
            results.append(self._deliver(sink, delivery))
        return results

    def _claim(self, delivery: PendingDelivery, now: datetime) -> bool:
        """Take the delivery to send, unless another notifier changed it since it was read."""
        with self.engine.begin() as conn:
            return notification_queries.claim(conn, delivery, now)

    def _record(self, delivery_pk: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            notification_queries.record(conn, delivery_pk, values)

    def _deliver(self, sink: WebhookSettings, delivery: PendingDelivery) -> DeliveryResult:
        """Send one delivery: up to `max_attempts` tries with backoff, then wait or give up."""
        event = delivery.event
        url = sink.resolved_url()
        if not url:
            unset = f"the environment variable {sink.url_env} (url_env) is not set"
            self._record(delivery.pk, status="failed", last_error=unset)
            log.warning("webhook %s: %s", sink.name, unset)
            return _result(sink, event, "failed", 0, unset)
        payload = slack_payload(event) if sink.kind == "slack" else json_payload(event)
        headers = {"User-Agent": "aiqm", "Idempotency-Key": f"aiqm-{event.pk}-{sink.name}"}
        before = delivery.attempts  # tries of earlier rounds
        last_try = before + sink.max_attempts
        error: str | None = None
        for attempt in range(before + 1, last_try + 1):
            sent = self._post(sink, url, payload, headers)
            if sent.error is None:
                self._record(
                    delivery.pk,
                    status="delivered",
                    attempts=attempt,
                    last_error=error,
                    delivered_at=self.clock(),
                )
                return _result(sink, event, "delivered", attempt)
            error = sent.error
            if attempt < last_try and sent.retryable:
                self._record(delivery.pk, attempts=attempt, last_error=error)
                self.sleep(self._backoff(sink, attempt - before, sent.retry_after))
                continue
            return self._end_round(sink, delivery, attempt, error, sent.retryable)
        raise AssertionError("max_attempts is at least 1")  # the config says so

    def _post(self, sink: WebhookSettings, url: str, payload: Any, headers: dict[str, str]) -> _Try:
        """One POST of the payload, and what came of it."""
        try:
            response = self.http.post(url, json=payload, headers=headers, timeout=sink.timeout_seconds)
        except httpx.TimeoutException:
            return _Try(f"timed out after {sink.timeout_seconds:g} s")
        except httpx.TransportError as exc:
            return _Try(f"network error: {type(exc).__name__}")
        if response.is_success:
            return _Try(None)
        return _Try(
            f"HTTP {response.status_code}: {_snippet(response.text)}",
            retryable=response.is_server_error or response.status_code in RETRY_STATUSES,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def _end_round(
        self, sink: WebhookSettings, delivery: PendingDelivery, attempt: int, error: str, retryable: bool
    ) -> DeliveryResult:
        """A round's tries all failed: another round later (while there are rounds left and the
        failure may pass), else the delivery failed for good."""
        event = delivery.event
        rounds = delivery.attempts // sink.max_attempts + 1  # this one included
        if retryable and rounds <= len(LATER_ROUNDS):
            later = self.clock() + LATER_ROUNDS[rounds - 1]
            self._record(
                delivery.pk, status="waiting", attempts=attempt, last_error=error, next_attempt_at=later
            )
            log.warning(
                "webhook %s: event %s not delivered yet (%s); next round at %s",
                sink.name,
                event.pk,
                error,
                later.isoformat(),
            )
            return _result(sink, event, "waiting", attempt, error)
        self._record(delivery.pk, status="failed", attempts=attempt, last_error=error)
        log.warning("webhook %s: event %s not delivered: %s", sink.name, event.pk, error)
        return _result(sink, event, "failed", attempt, error)

    def _backoff(self, sink: WebhookSettings, attempt: int, retry_after: float | None) -> float:
        """`backoff_seconds`, doubled each attempt, times a jitter of one half to one; or Retry-After."""
        if retry_after is not None:
            return min(retry_after, BACKOFF_CAP_SECONDS)
        step: float = min(BACKOFF_CAP_SECONDS, sink.backoff_seconds * 2.0 ** (attempt - 1))
        return step * (0.5 + 0.5 * self.rng.random())


@dataclass(frozen=True)
class _Try:
    """What one POST came to: no error (delivered), or the error and whether to try again."""

    error: str | None
    retryable: bool = True
    retry_after: float | None = None
    """Seconds the receiver asked to wait (Retry-After)."""


def _result(
    sink: WebhookSettings, event: TriggerEvent, status: str, attempts: int, error: str | None = None
) -> DeliveryResult:
    return DeliveryResult(
        event.pk,
        sink.name,
        event.feature,
        event.trigger,
        event.scope,
        event.to_state,
        status,
        attempts,
        error,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
