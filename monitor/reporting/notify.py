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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, and_, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import case

from monitor.config import Settings, WebhookSettings
from monitor.store.tables import notification_deliveries as deliveries
from monitor.store.tables import trigger_events as events

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


def json_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """The generic webhook's body: the transition as one flat JSON object."""
    return {
        "feature": event["feature"],
        "trigger": event["trigger"],
        "scope": event["scope"],
        "from": event["from_state"],
        "to": event["to_state"],
        "reason": event["reason"],
        "evidence": event["evidence"] or {},
        "owner": event["owner"],
        "at": _iso(event["at"]),
        "cycle_at": _iso(event["cycle_at"]),
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


def slack_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` (the notification's fallback) and Block Kit `blocks`."""
    icon = _ICONS.get(event["to_state"], ":information_source:")
    owner = _slack_owner(str(event["owner"]))
    trigger, scope = _slack_escape(str(event["trigger"])), _slack_escape(str(event["scope"]))
    change = f"{event['from_state']} → {event['to_state']}"
    what = f"{_slack_escape(str(event['feature']))}: {trigger} [{scope}] {change}"
    text = f"{icon} {what} (for {owner})"
    reason = _slack_escape(str(event["reason"]))
    cycle = _iso(event["cycle_at"])
    context = f"for {owner} · at {_iso(event['at'])}" + (f" · cycle {cycle}" if cycle else "")
    return {
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": f"{event['feature']}: {event['trigger']} {event['to_state']}"[:150],
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        f"{icon} *{trigger}* `{scope}`: "
                        f"{event['from_state']} → *{event['to_state']}*\n{reason}"
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

    def _feature_filter(self, sink: WebhookSettings, feature: str | None) -> Any:
        conditions: list[Any] = []
        if sink.features:
            conditions.append(events.c.feature.in_(sink.features))
        if feature is not None:
            conditions.append(events.c.feature == feature)
        return and_(*conditions) if conditions else literal(True)

    def _enqueue(self, sink: WebhookSettings, feature: str | None) -> list[DeliveryResult]:
        """One delivery row per new (event, sink): pending, or skipped when the event is too old."""
        now = self.clock()
        cutoff = now - timedelta(hours=sink.max_age_hours)
        status = case((events.c.at < cutoff, literal("skipped")), else_=literal("pending"))
        delivered = exists().where(deliveries.c.event_pk == events.c.pk, deliveries.c.sink == sink.name)
        source = select(
            events.c.pk, literal(sink.name), events.c.feature, status, literal(0), literal(now)
        ).where(~delivered, self._feature_filter(sink, feature))
        columns = ["event_pk", "sink", "feature", "status", "attempts", "created_at"]
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = (
                dialect.insert(deliveries)
                .from_select(columns, source)
                .on_conflict_do_nothing(index_elements=[deliveries.c.event_pk, deliveries.c.sink])
                .returning(deliveries.c.event_pk, deliveries.c.status)
            )
            created = [(int(row[0]), row[1]) for row in conn.execute(statement)]
            skipped = [pk for pk, state in created if state == "skipped"]
            rows = (
                {r["pk"]: r for r in conn.execute(select(events).where(events.c.pk.in_(skipped))).mappings()}
                if skipped
                else {}
            )
        return [
            DeliveryResult(
                pk, sink.name, row["feature"], row["trigger"], row["scope"], row["to_state"], "skipped", 0
            )
            for pk, row in sorted(rows.items())
        ]

    # -- sending

    def _send_pending(self, sink: WebhookSettings, feature: str | None) -> list[DeliveryResult]:
        now = self.clock()
        due = or_(
            deliveries.c.status == "pending",
            and_(deliveries.c.status == "waiting", deliveries.c.next_attempt_at <= now),
            # a notifier died while sending (a claim from before migration 0007 has no time)
            and_(
                deliveries.c.status == "sending",
                or_(deliveries.c.claimed_at.is_(None), deliveries.c.claimed_at <= now - STALE_CLAIM),
            ),
        )
        query = (
            select(
                deliveries.c.pk.label("delivery_pk"),
                deliveries.c.status.label("delivery_status"),
                deliveries.c.attempts.label("delivery_attempts"),
                events,
            )
            .join(events, events.c.pk == deliveries.c.event_pk)
            .where(deliveries.c.sink == sink.name, due, self._feature_filter(sink, feature))
            .order_by(events.c.pk)
        )
        with self.engine.connect() as conn:
            pending = [dict(row) for row in conn.execute(query).mappings()]
        results = []
        for row in pending:
            if not self._claim(row, now):
                continue  # another notifier took it
            results.append(self._deliver(sink, row))
        return results

    def _claim(self, row: Mapping[str, Any], now: datetime) -> bool:
        """Take the delivery to send, unless another notifier changed it since it was read."""
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.pk == row["delivery_pk"],
                    deliveries.c.status == row["delivery_status"],
                    deliveries.c.attempts == row["delivery_attempts"],
                )
                .values(status="sending", claimed_at=now, next_attempt_at=None)
            )
            return claimed.rowcount == 1

    def _record(self, delivery_pk: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.pk == delivery_pk).values(**values))

    def _deliver(self, sink: WebhookSettings, event: Mapping[str, Any]) -> DeliveryResult:
        payload = slack_payload(event) if sink.kind == "slack" else json_payload(event)
        url = sink.resolved_url()
        headers = {"User-Agent": "aiqm", "Idempotency-Key": f"aiqm-{event['pk']}-{sink.name}"}

        def result(status: str, attempts: int, error: str | None) -> DeliveryResult:
            return DeliveryResult(
                event["pk"],
                sink.name,
                event["feature"],
                event["trigger"],
                event["scope"],
                event["to_state"],
                status,
                attempts,
                error,
            )

        error: str | None = None
        if not url:
            error = f"the environment variable {sink.url_env} (url_env) is not set"
            self._record(event["delivery_pk"], status="failed", last_error=error)
            log.warning("webhook %s: %s", sink.name, error)
            return result("failed", 0, error)
        before = int(event["delivery_attempts"])  # tries of earlier rounds
        rounds = before // sink.max_attempts + 1  # this one included
        for attempt in range(before + 1, before + sink.max_attempts + 1):
            retry_after: float | None = None
            retryable = True
            try:
                response = self.http.post(url, json=payload, headers=headers, timeout=sink.timeout_seconds)
            except httpx.TimeoutException:
                error = f"timed out after {sink.timeout_seconds:g} s"
            except httpx.TransportError as exc:
                error = f"network error: {type(exc).__name__}"
            else:
                if response.is_success:
                    self._record(
                        event["delivery_pk"],
                        status="delivered",
                        attempts=attempt,
                        last_error=error,
                        delivered_at=self.clock(),
                    )
                    return result("delivered", attempt, None)
                error = f"HTTP {response.status_code}: {_snippet(response.text)}"
                retryable = response.status_code >= 500 or response.status_code in RETRY_STATUSES
                retry_after = _retry_after(response.headers.get("retry-after"))
            last = attempt == before + sink.max_attempts or not retryable
            if not last:
                self._record(event["delivery_pk"], attempts=attempt, last_error=error)
                self.sleep(self._backoff(sink, attempt - before, retry_after))
                continue
            if retryable and rounds <= len(LATER_ROUNDS):
                later = self.clock() + LATER_ROUNDS[rounds - 1]
                self._record(
                    event["delivery_pk"],
                    status="waiting",
                    attempts=attempt,
                    last_error=error,
                    next_attempt_at=later,
                )
                log.warning(
                    "webhook %s: event %s not delivered yet (%s); next round at %s",
                    sink.name,
                    event["pk"],
                    error,
                    later.isoformat(),
                )
                return result("waiting", attempt, error)
            self._record(event["delivery_pk"], status="failed", attempts=attempt, last_error=error)
            break
        log.warning("webhook %s: event %s not delivered: %s", sink.name, event["pk"], error)
        return result("failed", attempt, error)

    def _backoff(self, sink: WebhookSettings, attempt: int, retry_after: float | None) -> float:
        """`backoff_seconds`, doubled each attempt, times a jitter of one half to one; or Retry-After."""
        if retry_after is not None:
            return min(retry_after, BACKOFF_CAP_SECONDS)
        step: float = min(BACKOFF_CAP_SECONDS, sink.backoff_seconds * 2.0 ** (attempt - 1))
        return step * (0.5 + 0.5 * self.rng.random())


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
