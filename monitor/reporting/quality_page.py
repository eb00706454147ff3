"""What the quality page shows: every feature at a glance, and one feature's charts and timeline.

`Glance` reads the figures `/metrics` states (`monitor.store.metric_queries.MetricsReader`: a
bounded number of statements however many features; it keeps running totals between reads, so
it is kept for the daemon's life) and each feature's mode as `aiqm status` resolves it.
`feature_page` is `aiqm report`'s data and charts (`monitor.reporting.report`) with each judge's
calls and spend per cycle. Nothing is recomputed: these are the numbers the cycles stored.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.decide.modes import resolve_mode
from monitor.errors import NotFound
from monitor.reporting.report import charts, collect_report
from monitor.store import feature_queries as fq
from monitor.store.metric_queries import CycleRow, MetricsData, MetricsReader
from monitor.store.quality_queries import JudgeSpend, judge_spend

__all__ = [
    "SPEND_CYCLES",
    "Agreement",
    "FeatureGlance",
    "FeaturePage",
    "Glance",
    "Interval",
    "TriggerLine",
    "feature_page",
]

SPEND_CYCLES = 8
"""The judge spend table covers this many of the latest cycles that called a judge."""
PPI_METHODS = {
    "ppi": "human labels stretched by the judge's verdicts",
    "ppi-actions": "human labels and user actions",
}


@dataclass(frozen=True)
class Interval:
    """A pass rate with its interval."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class TriggerLine:
    trigger: str
    scope: str
    state: str
    since: datetime


@dataclass(frozen=True)
class Agreement:
    """A judge's agreement with the humans on a cycle's sample (Cohen's kappa)."""

    judge: str
    kappa: float | None
    low: float | None
    high: float | None
    agreement: float | None
    pairs: int
    calls: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class FeatureGlance:
    """One feature's line on the overview."""

    name: str
    owner: str
    mode: str
    mode_reason: str
    pass_rate: Interval | None
    measured_at: datetime | None
    labelled: int
    method: str
    """How the pass rate was estimated (`weighted`, `ppi` with a judge, ...)."""
    baseline: Interval | None
    baseline_version: int | None
    retrain_line: float | None
    floor: float | None
    triggers: list[TriggerLine]
    """Firing first, then pending."""
    review_drawn: int
    review_left: int
    review_at: datetime | None
    last_cycle_at: datetime | None
    last_finished_at: datetime | None
    human_labels: int
    judge_labels: int
    judges: list[Agreement] = field(default_factory=list)

    @property
    def firing(self) -> list[TriggerLine]:
        return [t for t in self.triggers if t.state == "firing"]

    @property
    def below_floor(self) -> bool:
        return (
            self.pass_rate is not None and self.floor is not None and (self.pass_rate.value or 0) < self.floor
        )

    @property
    def method_words(self) -> str:
        return PPI_METHODS.get(self.method, "human labels" if self.method else "")


class Glance:
    """Reads every feature's line; one per daemon (its reader keeps running totals, under a lock)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._reader = MetricsReader(engine.dialect.name)
        self._lock = threading.Lock()

    def read(self, now: datetime) -> list[FeatureGlance]:
        with self._lock, self.engine.connect() as conn:
            data = self._reader.read(conn, now)
            modes = {
                name: resolve_mode(fq.mode_rows(conn, name, now), self.settings.feature(name).fallback_mode)
                for name in self.names(data)
            }
        return [self._line(name, data, modes[name].mode, modes[name].reason) for name in self.names(data)]

    def names(self, data: MetricsData) -> list[str]:
        return sorted({*data.features, *self.settings.features})

    def _line(self, name: str, data: MetricsData, mode: str, reason: str) -> FeatureGlance:
        feature = self.settings.feature(name)
        measured, latest = data.measured.get(name), data.latest.get(name)
        overall = _overall(measured)
        baseline = data.baselines.get(name)
        base_rate = baseline.pass_rate if baseline is not None else None
        review = data.review.get(name)
        labels = data.labels.get(name, {})
        order = {"firing": 0, "pending": 1}
        triggers = sorted(
            (
                TriggerLine(t.trigger, t.scope, t.state, t.since)
                for t in data.triggers.get(name, [])
                if t.state in order
            ),
            key=lambda t: (order[t.state], t.trigger, t.scope != "all", t.scope),
        )
        return FeatureGlance(
            name=name,
            owner=feature.owner,
            mode=mode,
            mode_reason=reason,
            pass_rate=overall,
            measured_at=measured.at if measured is not None else None,
            labelled=_labelled(measured),
            method=str(((measured.result.get("quality") or {}).get("all") or {}).get("method", ""))
            if measured
            else "",
            baseline=None
            if baseline is None
            else Interval(baseline.pass_rate, baseline.pass_rate_low, baseline.pass_rate_high),
            baseline_version=baseline.version if baseline is not None else None,
            retrain_line=None if base_rate is None else max(0.0, base_rate - feature.retrain_drop),
            floor=None if base_rate is None else max(0.0, base_rate - feature.fallback_drop),
            triggers=triggers,
            review_drawn=review.drawn if review is not None else 0,
            review_left=review.backlog if review is not None else 0,
            review_at=review.cycle_at if review is not None else None,
            last_cycle_at=latest.at if latest is not None else None,
            last_finished_at=latest.finished_at if latest is not None else None,
            human_labels=labels.get("human", 0),
            judge_labels=labels.get("judge", 0),
            judges=_agreements(measured, latest, data.judges.get(name, {})),
        )


def _overall(measured: CycleRow | None) -> Interval | None:
    if measured is None:
        return None
    return Interval(measured.pass_rate, measured.pass_rate_low, measured.pass_rate_high)


def _labelled(measured: CycleRow | None) -> int:
    if measured is None:
        return 0
    value = ((measured.result.get("quality") or {}).get("all") or {}).get("labelled", measured.labelled)
    return int(value) if isinstance(value, int | float) else measured.labelled


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _agreements(
    measured: CycleRow | None, latest: CycleRow | None, totals: Mapping[str, Any]
) -> list[Agreement]:
    """Each judge's agreement on the latest cycle that has one, with every call it made so far."""
    cycle = next((c for c in (measured, latest) if c is not None and c.result.get("judges")), None)
    summaries: Mapping[str, Any] = cycle.result.get("judges") or {} if cycle is not None else {}
    found = []
    for judge in sorted({*summaries, *totals}):
        summary = summaries.get(judge)
        summary = summary if isinstance(summary, Mapping) else {}
        spent = totals.get(judge)
        found.append(
            Agreement(
                judge=judge,
                kappa=_number(summary.get("kappa")),
                low=_number(summary.get("low")),
                high=_number(summary.get("high")),
                agreement=_number(summary.get("agreement")),
                pairs=int(_number(summary.get("n")) or 0),
                calls=spent.calls if spent is not None else 0,
                cost_usd=spent.cost_usd if spent is not None else 0.0,
            )
        )
    return found


@dataclass(frozen=True)
class FeaturePage:
    """One feature's page: `aiqm report`'s data and its charts, and the judges' spend."""

    report: dict[str, Any]
    charts: dict[str, str]
    """Chart name -> its PNG as a data URI, in the order `aiqm report` shows them."""
    spend: list[JudgeSpend]


def feature_page(engine: Engine, settings: Settings, feature: str) -> FeaturePage | None:
    """The feature's page; None before its first cycle."""
    try:
        report = collect_report(engine, settings, feature)
    except NotFound:
        return None
    with engine.connect() as conn:
        spend = judge_spend(conn, feature, SPEND_CYCLES)
    return FeaturePage(report, charts(report), spend)
