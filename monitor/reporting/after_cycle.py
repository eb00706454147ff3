"""What follows a cycle: the budget check, the weekly digest, then the webhook notifications.

`aiqm cycle` and the daemon's scheduler both run `after_cycles` once their cycles are done, so
a cycle run by hand sends what a scheduled one sends. The steps, in order:

1. budget: a week over the feature's `budget_usd_per_week` becomes a `budget` event
   (`monitor.reporting.costs.check_budget`), which the notifications then deliver;
2. digest: the week's digest is queued and whatever is due is sent, when `digest` is
   configured (`monitor.reporting.digest.send_due`: once per channel and week);
3. notifications: the trigger transitions not yet handed to each webhook are delivered.

Nothing here raises: a step that fails is logged with its traceback and noted in the report,
and the next step still runs (what failed is tried again after the next cycle).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.reporting.costs import WeekCosts, check_budget
from monitor.reporting.digest import send_due
from monitor.reporting.notify import DeliveryResult, Notifier
from monitor.reporting.otlp_export import export_after_cycle
from monitor.store.cycle_queries import cycle_row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AfterCycleReport:
    """What the steps did."""

    over_budget: tuple[WeekCosts, ...] = ()
    """The cycles' weeks that cost more than their feature's budget."""
    digest: tuple[str, ...] = ()
    """A note per digest sending: `email: sent to ...`, `webhook team: HTTP 200`, or why it failed."""
    deliveries: tuple[DeliveryResult, ...] = ()
    """The notifications handed to the webhooks (or skipped, or left for a later round)."""
    failed: tuple[str, ...] = ()
    """The steps that raised, each as `<step> of <feature>: <error>`."""

    def lines(self) -> list[str]:
        """The report for a person (`aiqm cycle` writes it to standard error)."""
        lines = [
            f"{c.feature}: the week cost ${c.total_usd:,.2f}, over its budget ${c.budget_usd:,.2f}"
            for c in self.over_budget
        ]
        lines += [f"digest: {note}" for note in self.digest]
        for d in self.deliveries:
            note = f"; {d.error}" if d.error else ""
            what = f"{d.feature} {d.trigger}[{d.scope}] -> {d.to_state}"
            lines.append(f"webhook {d.sink}: {what}: {d.status} after {d.attempts} attempt(s){note}")
        return lines + [f"failed: {failure}" for failure in self.failed]


def after_cycles(
    engine: Engine,
    settings: Settings,
    cycles: Sequence[tuple[str, datetime]],
    clock: Callable[[], datetime],
    notifier: Notifier | None,
    notifications_of: str | None,
    http: httpx.Client | None = None,
) -> AfterCycleReport:
    """Run the steps after these (feature, scheduled time) cycles: budget checks, the weekly digest,
    the verdicts exported over OTLP (when configured), the notifications. Never raises.

    `notifications_of` names the feature whose transitions are delivered (None: every
    feature's, what earlier runs left over included); without a `notifier` none are. `http`
    is the client for the digest's webhooks (default: one of its own).
    """
    failed: list[str] = []
    over, measured = _check_budgets(engine, settings, cycles, clock, failed)
    digest = _send_digests(engine, settings, measured, clock, http, failed)
    for feature, at in cycles:  # verdicts out, beside the traces (a failure is logged, never raised)
        export_after_cycle(engine, settings, feature, at, http)
    deliveries = _notify(notifier, notifications_of, failed)
    report = AfterCycleReport(tuple(over), tuple(digest), tuple(deliveries), tuple(failed))
    for note in digest:
        log.info("digest after the cycles of %s: %s", ", ".join(measured), note)
    return report


def _check_budgets(
    engine: Engine,
    settings: Settings,
    cycles: Sequence[tuple[str, datetime]],
    clock: Callable[[], datetime],
    failed: list[str],
) -> tuple[list[WeekCosts], list[str]]:
    """The weeks over budget, and the features whose cycle is in the store (to get a digest)."""
    over: list[WeekCosts] = []
    stored: list[str] = []
    for feature, at in cycles:
        try:
            with engine.connect() as conn:
                row = cycle_row(conn, feature, at)
            if row is None:
                continue
            stored.append(feature)
            costs = check_budget(engine, settings, feature, row, clock())
        except Exception as exc:
            log.exception("the budget check of %s after the cycle at %s failed", feature, at.isoformat())
            failed.append(f"budget check of {feature}: {exc!r}")
            continue
        if costs is not None:
            log.info("%s: the week of the cycle at %s is over its budget", feature, at.isoformat())
            over.append(costs)
    return over, stored


def _send_digests(
    engine: Engine,
    settings: Settings,
    features: list[str],
    clock: Callable[[], datetime],
    http: httpx.Client | None,
    failed: list[str],
) -> list[str]:
    if settings.digest is None or not features:
        return []
    try:
        return send_due(engine, settings, clock(), features, http)
    except Exception as exc:
        log.exception("the digest of %s failed; it is tried again later", ", ".join(features))
        failed.append(f"digest of {', '.join(features)}: {exc!r}")
        return []


def _notify(notifier: Notifier | None, feature: str | None, failed: list[str]) -> list[DeliveryResult]:
    if notifier is None:
        return []
    try:
        return notifier.deliver_new(feature)
    except Exception as exc:
        log.exception("notifications of %s failed; they are retried after the next cycle", feature or "all")
        failed.append(f"notifications of {feature or 'every feature'}: {exc!r}")
        return []


@contextmanager
def webhook_notifier(
    engine: Engine, settings: Settings, clock: Callable[[], datetime]
) -> Iterator[Notifier | None]:
    """A notifier on an HTTP client of its own, for a one-off run; None without webhooks."""
    if not settings.webhooks:
        yield None
        return
    with httpx.Client() as http:
        yield Notifier(engine, settings, http, clock)
