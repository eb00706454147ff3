"""The Prometheus `Collector`: reads the latest persisted results at scrape time.

Every scrape reads the store (`monitor.store.metric_queries`, a fixed handful of aggregate
queries over all features) and builds the families from it; nothing is recomputed and no
labelled gauge is kept between scrapes, so a scope or trigger that went away is gone from the
next scrape. When the store cannot be read, the scrape still answers: `aiqm_store_up 0` and
nothing stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

import monitor
from monitor.config import Settings
from monitor.decide.modes import Facts, Override, StoredMode, Trigger, resolve_mode
from monitor.decide.schedule import period
from monitor.metrics.families import Families, in_order, ts
from monitor.metrics.results import fill_results
from monitor.metrics.specs import MODES
from monitor.store.metric_queries import MetricsData, MetricsReader

__all__ = ["QualityCollector"]

log = logging.getLogger("monitor.metrics.exporter")  # the name the daemon's log has always shown


class QualityCollector(Collector):
    """Yields every feature's latest quality, triggers, drift and cycle health at each scrape.

    The families come in groups by what they are read from: the cycles' stored results
    (quality, baselines, triggers, drift, the latest window, judge agreement), the features'
    state (owner, mode, cycle health), ingest (outputs), labelling (labels, judges, review). At
    each scrape the store is read; a group is built again only when what it reads changed, and
    yielded as the same objects otherwise (the exposition then reuses their text).
    """

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self._reader = MetricsReader(engine.dialect.name)
        self._intervals: dict[str, float] = {}
        self._cached: dict[str, tuple[Any, Families]] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        # Registering must not read the store (the daemon may start before the database).
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = list(self._collect())
        yield from families

    def _collect(self) -> Iterator[Metric]:
        scrape = Families()
        scrape.info("aiqm_build", {"version": monitor.__version__})
        started = time.perf_counter()
        try:
            now = self.clock()
            with self.engine.connect() as conn:
                data = self._reader.read(conn, now)
            groups = [self._group(fill, key(data), data, now) for key, fill in self._groups()]
        except Exception as exc:
            log.error(
                "metrics: cannot read the store (%s); aiqm_store_up 0", type(exc).__name__, exc_info=exc
            )
            self._reader = MetricsReader(self.engine.dialect.name)  # start afresh once it is back
            self._cached.clear()
            scrape.add("aiqm_store_up", (), 0)
            scrape.add("aiqm_metrics_read_duration_seconds", (), time.perf_counter() - started)
            yield from in_order(scrape)
            return
        scrape.add("aiqm_store_up", (), 1)
        scrape.add("aiqm_metrics_read_duration_seconds", (), time.perf_counter() - started)
        yield from in_order(scrape, *groups)

    # ------------------------------------------------------------------ families by what they read

    Fill = Callable[[Families, MetricsData, datetime], None]

    def _groups(self) -> list[tuple[Callable[[MetricsData], Any], QualityCollector.Fill]]:
        """(what a group of families is read from, how it is filled): a group is built again only
        when what it reads changed, else its families are yielded again as they were."""
        return [
            (lambda d: d.results_version, self._fill_results),
            (self._state_key, self._fill_state),
            (self._ingest_key, self._fill_ingest),
            (self._labelling_key, self._fill_labelling),
        ]

    def _group(self, fill: QualityCollector.Fill, key: Any, data: MetricsData, now: datetime) -> Families:
        name = fill.__name__
        cached = self._cached.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        families = Families()
        fill(families, data, now)
        self._cached[name] = (key, families)
        return families

    def _names(self, data: MetricsData) -> list[str]:
        return sorted({*data.features, *self.settings.features})

    @staticmethod
    def _state_key(data: MetricsData) -> Any:
        return (
            tuple((f.name, f.mode, f.mode_reason, f.mode_by_override) for f in data.features.values()),
            tuple(sorted(data.overrides.items())),
            data.results_version[0],  # the trigger states come with the cycles
            tuple(sorted(data.cycles.items())),
        )

    @staticmethod
    def _ingest_key(data: MetricsData) -> Any:
        return tuple(
            (f.name, f.outputs_total, f.last_output_ts, f.last_ingest_at) for f in data.features.values()
        )

    @staticmethod
    def _labelling_key(data: MetricsData) -> Any:
        return (
            tuple(data.features),
            tuple((name, tuple(sorted(counts.items()))) for name, counts in sorted(data.labels.items())),
            tuple((name, tuple(sorted(judges.items()))) for name, judges in sorted(data.judges.items())),
            tuple(sorted(data.review.items())),
            tuple(sorted(data.open_flags.items())),
            tuple(sorted(data.deliveries.items())),
        )

    def _interval(self, expression: str, now: datetime) -> float:
        seconds = self._intervals.get(expression)
        if seconds is None:
            seconds = self._intervals[expression] = period(expression, now).total_seconds()
        return seconds

    def _fill_state(self, out: Families, data: MetricsData, now: datetime) -> None:
        """Who owns each feature, its mode and schedule, and how its cycles went."""
        for name in self._names(data):
            feature = self.settings.feature(name)
            out.info(
                "aiqm_feature",
                {
                    "feature": name,
                    "owner": feature.owner,
                    "decision_owner": feature.decision_owner or feature.owner,
                },
            )
            mode = self._mode(name, data)
            for candidate in MODES:
                out.add("aiqm_feature_mode", (name, candidate), 1 if candidate == mode else 0)
            out.add("aiqm_cycle_interval_seconds", (name,), self._interval(feature.schedule, now))
            cycles = data.cycles.get(name)
            if cycles is not None:
                out.add("aiqm_cycles_completed_total", (name,), cycles.done)
                out.summary(
                    "aiqm_cycle_duration_seconds", (name,), cycles.duration_count, cycles.duration_sum
                )
                out.add("aiqm_cycles_running", (name,), cycles.running)
                out.add("aiqm_cycles_failed", (name,), cycles.failed)

    def _fill_ingest(self, out: Families, data: MetricsData, _now: datetime) -> None:
        for name in self._names(data):
            row = data.features.get(name)
            out.add("aiqm_outputs_ingested_total", (name,), row.outputs_total if row else 0)
            if row is not None:
                out.add("aiqm_last_output_timestamp_seconds", (name,), ts(row.last_output_ts))
                out.add("aiqm_last_ingest_timestamp_seconds", (name,), ts(row.last_ingest_at))

    def _fill_labelling(self, out: Families, data: MetricsData, _now: datetime) -> None:
        for name in self._names(data):
            counts = data.labels.get(name, {})
            for kind in ("human", "judge"):
                out.add("aiqm_labels_total", (name, kind), counts.get(kind, 0))
            for judge, calls in sorted(data.judges.get(name, {}).items()):
                out.add("aiqm_judge_calls_total", (name, judge), calls.calls)
                out.add("aiqm_judge_errors_total", (name, judge), calls.errors)
                out.add("aiqm_judge_cost_usd_total", (name, judge), calls.cost_usd)
            review = data.review.get(name)
            known = name in data.features
            if review is not None:
                out.add("aiqm_review_backlog", (name,), review.backlog)
                out.add("aiqm_sample_size", (name,), review.drawn)
                hourly = self.settings.feature(name).review_hourly_usd
                out.add("aiqm_review_time_seconds", (name,), review.review_seconds)
                out.add("aiqm_reviewer_cost_usd", (name,), review.review_seconds / 3600 * hourly)
            elif known:
                out.add("aiqm_review_backlog", (name,), 0)
            if known:
                out.add("aiqm_review_flagged", (name,), data.open_flags.get(name, 0))
                for kind in ("webhook", "digest"):
                    retrying = data.deliveries.get((name, kind, "retrying"), 0)
                    out.add("aiqm_notifications_retrying", (name, kind), retrying)
                    failed = data.deliveries.get((name, kind, "failed"), 0)
                    out.add("aiqm_notifications_failed_total", (name, kind), failed)
                budget = self.settings.feature(name).budget_usd_per_week
                if budget is not None:
                    out.add("aiqm_budget_usd_per_week", (name,), budget)

    def _mode(self, name: str, data: MetricsData) -> str:
        """The feature's mode as `monitor.decide.modes.resolve_mode` gives it (the status
        endpoint's): an override in force wins; one that ended hands back to the triggers."""
        row = data.features.get(name)
        override = data.overrides.get(name)
        facts = Facts(
            override=Override(override) if override is not None else None,
            stored=None if row is None else StoredMode(row.mode, row.mode_reason, None, row.mode_by_override),
            triggers=[Trigger(t.trigger, t.scope, t.state) for t in data.triggers.get(name, [])],
            has_cycle=name in data.latest,
        )
        return resolve_mode(facts, self.settings.feature(name).fallback_mode).mode

    def _fill_results(self, out: Families, data: MetricsData, _now: datetime) -> None:
        fill_results(out, data, self.settings)
