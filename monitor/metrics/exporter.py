"""The Prometheus exporter: a custom `Collector` that reads the latest persisted results at scrape time.

Every scrape builds fresh metric families from the store (`monitor.store.metric_queries`, a fixed
handful of aggregate queries over all features); nothing is recomputed and no labelled gauge is
kept between scrapes, so a scope or trigger that went away is gone from the next scrape. When
the store cannot be read, the scrape still answers: `aiqm_store_up 0` and nothing stale.

CONTRACT section 6 names the metrics dashboards and alert rules rely on; `METRICS` below lists
every metric with its type, labels and help text (the README's metric table follows it).
Cardinality is bounded by `metrics:` in the config: at most `max_scopes_per_feature` segment
scopes per feature (the ones with an active trigger first, then the most labelled), counted in
`aiqm_scopes_dropped`, and at most `max_signals_per_feature` drift signals (drifted first),
counted in `aiqm_drift_signals_dropped`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine

import monitor
from monitor.config import Settings
from monitor.cycle.result import CycleResult
from monitor.decide.quality import ScopeQuality
from monitor.decide.schedule import period
from monitor.store.metric_queries import CycleRow, MetricsData, MetricsReader

__all__ = [
    "METRICS",
    "MODES",
    "USER_ACTIONS",
    "MetricSpec",
    "QualityCollector",
    "TextExposition",
    "build_registry",
]

log = logging.getLogger(__name__)

MODES = ("normal", "review", "fallback", "off")
USER_ACTIONS = ("accepted", "edited", "rejected", "retried", "ignored", "none")
STANDARD_TRIGGERS = ("retrain", "fallback", "drift", "stale")
"""Exported at scope `all` (as 0) for every feature with a cycle, so alerts can tell 0 from absent."""

Kind = Literal["gauge", "counter", "summary", "info"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


F = ("feature",)
FS = ("feature", "scope")
FJ = ("feature", "judge")
FTS = ("feature", "trigger", "scope")

METRICS: tuple[MetricSpec, ...] = (
    # --- CONTRACT section 6 -------------------------------------------------------------
    MetricSpec(
        "aiqm_quality_pass_rate",
        "gauge",
        FS,
        "Pass rate (0-1) of the latest cycle with labels, overall (scope=all) or per segment value",
    ),
    MetricSpec("aiqm_quality_pass_rate_lower", "gauge", FS, "Lower bound of the pass rate's interval"),
    MetricSpec("aiqm_quality_pass_rate_upper", "gauge", FS, "Upper bound of the pass rate's interval"),
    MetricSpec("aiqm_quality_baseline_pass_rate", "gauge", F, "Pass rate of the active baseline"),
    MetricSpec(
        "aiqm_labels_total", "counter", ("feature", "source_kind"), "Labels stored, by human or judge"
    ),
    MetricSpec("aiqm_outputs_ingested_total", "counter", F, "Logged outputs stored"),
    MetricSpec(
        "aiqm_review_backlog",
        "gauge",
        F,
        "Outputs of the latest review sample that no human labelled and nobody flagged yet",
    ),
    MetricSpec(
        "aiqm_drift_score",
        "gauge",
        ("feature", "signal", "test"),
        "Drift test statistic of the latest cycle against the baseline (ks: Kolmogorov-Smirnov D; "
        "chi2: chi-square)",
    ),
    MetricSpec("aiqm_trigger_firing", "gauge", FTS, "1 while the trigger fires for the scope, else 0"),
    MetricSpec("aiqm_feature_mode", "gauge", ("feature", "mode"), "1 for the feature's current mode"),
    MetricSpec(
        "aiqm_last_cycle_success_timestamp_seconds",
        "gauge",
        F,
        "Unix time the latest successful cycle finished",
    ),
    # --- the exporter itself --------------------------------------------------------------
    MetricSpec(
        "aiqm_notifications_retrying",
        "gauge",
        ("feature", "kind"),
        "Trigger notifications (kind webhook) or weekly digests (kind digest) not delivered yet and "
        "waiting for a later try",
    ),
    MetricSpec(
        "aiqm_notifications_failed_total",
        "counter",
        ("feature", "kind"),
        "Trigger notifications (kind webhook) or weekly digests (kind digest) given up for good",
    ),
    MetricSpec("aiqm_build", "info", ("version",), "The running ai-quality-monitor"),
    MetricSpec("aiqm_store_up", "gauge", (), "1 when this scrape could read the store, else 0"),
    MetricSpec("aiqm_metrics_read_duration_seconds", "gauge", (), "Time this scrape spent reading the store"),
    # --- features, ingest -------------------------------------------------------------------
    MetricSpec("aiqm_feature", "info", ("feature", "owner", "decision_owner"), "A feature and who owns it"),
    MetricSpec(
        "aiqm_last_output_timestamp_seconds", "gauge", F, "Unix time (`ts`) of the newest output stored"
    ),
    MetricSpec("aiqm_last_ingest_timestamp_seconds", "gauge", F, "Unix time outputs were last stored"),
    # --- quality --------------------------------------------------------------------------
    MetricSpec("aiqm_quality_labelled_outputs", "gauge", FS, "Labelled outputs behind the pass rate"),
    MetricSpec(
        "aiqm_quality_cycle_timestamp_seconds",
        "gauge",
        F,
        "Scheduled Unix time of the cycle the pass rate describes",
    ),
    MetricSpec(
        "aiqm_quality_confidence_level", "gauge", F, "Confidence level (0-1) of the pass rate intervals"
    ),
    MetricSpec("aiqm_quality_baseline_pass_rate_lower", "gauge", F, "Lower bound of the baseline's interval"),
    MetricSpec("aiqm_quality_baseline_pass_rate_upper", "gauge", F, "Upper bound of the baseline's interval"),
    MetricSpec(
        "aiqm_quality_retrain_threshold",
        "gauge",
        F,
        "The retrain line: the baseline minus retrain_drop (quality shown below it fires `retrain`)",
    ),
    MetricSpec(
        "aiqm_quality_fallback_threshold",
        "gauge",
        F,
        "The floor: the baseline minus fallback_drop (quality shown below it fires `fallback`)",
    ),
    MetricSpec("aiqm_baseline_version", "gauge", F, "Version of the active baseline"),
    MetricSpec(
        "aiqm_baseline_proposals", "gauge", F, "Baselines proposed after a version change, not yet adopted"
    ),
    MetricSpec(
        "aiqm_scopes_dropped",
        "gauge",
        F,
        "Segment scopes not exported (over metrics.max_scopes_per_feature)",
    ),
    # --- triggers -------------------------------------------------------------------------
    MetricSpec(
        "aiqm_trigger_pending",
        "gauge",
        FTS,
        "1 while the trigger is pending (evidence building) for the scope",
    ),
    MetricSpec(
        "aiqm_trigger_since_timestamp_seconds",
        "gauge",
        FTS,
        "Unix time a pending or firing trigger entered its state",
    ),
    # --- drift ----------------------------------------------------------------------------
    MetricSpec("aiqm_drift_p_value", "gauge", ("feature", "signal", "test"), "p-value of the drift test"),
    MetricSpec(
        "aiqm_drift_effect_size",
        "gauge",
        ("feature", "signal", "measure"),
        "Drift effect size (wasserstein_scaled: Wasserstein distance over the baseline's spread; "
        "js_distance: Jensen-Shannon distance)",
    ),
    MetricSpec(
        "aiqm_drift_effect_threshold",
        "gauge",
        ("feature", "measure"),
        "Effect size above which a significant difference counts as drift",
    ),
    MetricSpec(
        "aiqm_drift_detected", "gauge", ("feature", "signal"), "1 when the signal drifted in the latest cycle"
    ),
    MetricSpec(
        "aiqm_drift_signals_dropped",
        "gauge",
        F,
        "Drift signals not exported (over metrics.max_signals_per_feature)",
    ),
    # --- product signals and cost of the latest window ---------------------------------------
    MetricSpec("aiqm_window_outputs", "gauge", F, "Outputs in the latest cycle's window"),
    MetricSpec(
        "aiqm_user_action_ratio",
        "gauge",
        ("feature", "action"),
        "Share (0-1) of the latest window's outputs by what the user did (none: not reported)",
    ),
    MetricSpec(
        "aiqm_window_cost_usd", "gauge", F, "What the latest window's outputs cost (signals.cost_usd)"
    ),
    MetricSpec("aiqm_cost_per_output_usd", "gauge", F, "Mean cost of an output in the latest window"),
    MetricSpec(
        "aiqm_cost_per_accepted_output_usd",
        "gauge",
        F,
        "The latest window's cost divided by its outputs the users accepted",
    ),
    # --- judges ---------------------------------------------------------------------------
    MetricSpec(
        "aiqm_judge_agreement_kappa",
        "gauge",
        FJ,
        "Cohen's kappa between the judge and the humans on the latest labelled sample",
    ),
    MetricSpec(
        "aiqm_judge_agreement_ratio", "gauge", FJ, "Share of paired items where judge and human agree"
    ),
    MetricSpec("aiqm_judge_agreement_pairs", "gauge", FJ, "Items both the judge and a human gave a verdict"),
    MetricSpec("aiqm_judge_calls_total", "counter", FJ, "Judge calls recorded"),
    MetricSpec(
        "aiqm_judge_errors_total",
        "counter",
        FJ,
        "Judge calls that gave no verdict (a failure, or the cycle's budget exhausted)",
    ),
    MetricSpec("aiqm_judge_cost_usd_total", "counter", FJ, "What the judge's calls cost"),
    # --- review ---------------------------------------------------------------------------
    MetricSpec("aiqm_sample_size", "gauge", F, "Outputs drawn for review by the latest sampling cycle"),
    MetricSpec(
        "aiqm_next_sample_size", "gauge", F, "Outputs the next cycle will draw (more while evidence builds)"
    ),
    MetricSpec("aiqm_review_flagged", "gauge", F, "Outputs flagged for the owner and not resolved"),
    MetricSpec(
        "aiqm_review_time_seconds", "gauge", F, "Reviewers' time on the latest sample's labels (review page)"
    ),
    MetricSpec("aiqm_reviewer_cost_usd", "gauge", F, "That time priced at the feature's review_hourly_usd"),
    MetricSpec("aiqm_budget_usd_per_week", "gauge", F, "The feature's weekly cost budget (when set)"),
    # --- cycles ---------------------------------------------------------------------------
    MetricSpec(
        "aiqm_last_cycle_scheduled_timestamp_seconds",
        "gauge",
        F,
        "Scheduled Unix time of the latest successful cycle",
    ),
    MetricSpec("aiqm_last_cycle_duration_seconds", "gauge", F, "How long the latest successful cycle took"),
    MetricSpec("aiqm_cycle_duration_seconds", "summary", F, "How long successful cycles took"),
    MetricSpec("aiqm_cycles_completed_total", "counter", F, "Cycles that finished"),
    MetricSpec("aiqm_cycles_running", "gauge", F, "Cycles started within the last hour, not finished"),
    MetricSpec(
        "aiqm_cycles_failed",
        "gauge",
        F,
        "Cycles started over an hour ago that never finished (failed or interrupted)",
    ),
    MetricSpec(
        "aiqm_cycle_interval_seconds", "gauge", F, "Longest gap between the feature's scheduled cycles"
    ),
)

_SPECS = {spec.name: spec for spec in METRICS}


class _Families:
    """Metric families being filled, created on first use."""

    def __init__(self) -> None:
        self.made: dict[str, Metric] = {}

    def _family(self, name: str) -> Metric:
        family = self.made.get(name)
        if family is None:
            spec = _SPECS[name]
            labels = list(spec.labels)
            unit = "seconds" if name.endswith("_seconds") and spec.kind != "info" else ""
            if spec.kind == "gauge":
                family = GaugeMetricFamily(name, spec.help, labels=labels, unit=unit)
            elif spec.kind == "counter":
                family = CounterMetricFamily(name, spec.help, labels=labels)
            elif spec.kind == "summary":
                family = SummaryMetricFamily(name, spec.help, labels=labels, unit=unit)
            else:
                family = InfoMetricFamily(name, spec.help, labels=[])
            self.made[name] = family
        return family

    def add(self, name: str, labels: Sequence[str], value: float | None) -> None:
        """A sample (skipped when the value is unknown)."""
        if value is None:
            return
        family = self._family(name)
        assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
        family.add_metric(list(labels), float(value))

    def info(self, name: str, values: Mapping[str, str]) -> None:
        family = self._family(name)
        assert isinstance(family, InfoMetricFamily)
        family.add_metric([], dict(values))

    def summary(self, name: str, labels: Sequence[str], count: int, total: float) -> None:
        family = self._family(name)
        assert isinstance(family, SummaryMetricFamily)
        family.add_metric(list(labels), count, total)


def _in_order(*groups: _Families) -> Iterator[Metric]:
    """The families of all groups in `METRICS` order (each name is filled by one group)."""
    for spec in METRICS:
        for group in groups:
            family = group.made.get(spec.name)
            if family is not None:
                yield family
                break


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number else None


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
        self._cached: dict[str, tuple[Any, _Families]] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        # Registering must not read the store (the daemon may start before the database).
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = list(self._collect())
        yield from families

    def _collect(self) -> Iterator[Metric]:
        scrape = _Families()
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
            yield from _in_order(scrape)
            return
        scrape.add("aiqm_store_up", (), 1)
        scrape.add("aiqm_metrics_read_duration_seconds", (), time.perf_counter() - started)
        yield from _in_order(scrape, *groups)

    # ------------------------------------------------------------------ families by what they read

    Fill = Callable[[_Families, MetricsData, datetime], None]

    def _groups(self) -> list[tuple[Callable[[MetricsData], Any], QualityCollector.Fill]]:
        """(what a group of families is read from, how it is filled): a group is built again only
        when what it reads changed, else its families are yielded again as they were."""
        return [
            (lambda d: d.results_version, self._fill_results),
            (self._state_key, self._fill_state),
            (self._ingest_key, self._fill_ingest),
            (self._labelling_key, self._fill_labelling),
        ]

    def _group(self, fill: QualityCollector.Fill, key: Any, data: MetricsData, now: datetime) -> _Families:
        name = fill.__name__
        cached = self._cached.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        families = _Families()
        fill(families, data, now)
        self._cached[name] = (key, families)
        return families

    def _names(self, data: MetricsData) -> list[str]:
        return sorted({*data.features, *self.settings.features})

    @staticmethod
    def _state_key(data: MetricsData) -> Any:
        return (
            tuple((f.name, f.mode, f.mode_reason) for f in data.features.values()),
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

    def _fill_state(self, out: _Families, data: MetricsData, now: datetime) -> None:
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

    def _fill_ingest(self, out: _Families, data: MetricsData, _now: datetime) -> None:
        for name in self._names(data):
            row = data.features.get(name)
            out.add("aiqm_outputs_ingested_total", (name,), row.outputs_total if row else 0)
            if row is not None:
                out.add("aiqm_last_output_timestamp_seconds", (name,), _ts(row.last_output_ts))
                out.add("aiqm_last_ingest_timestamp_seconds", (name,), _ts(row.last_ingest_at))

    def _fill_labelling(self, out: _Families, data: MetricsData, _now: datetime) -> None:
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
        """As the status endpoint says: an override in force wins; an override that ended gives
        the mode back to the `fallback` trigger (see `monitor.api.modes`)."""
        if name in data.overrides:
            return data.overrides[name]
        row = data.features.get(name)
        if row is None:
            return "normal"
        if row.mode_reason.startswith("manual override:"):
            firing = any(
                t.trigger == "fallback" and t.scope == "all" and t.state == "firing"
                for t in data.triggers.get(name, [])
            )
            return self.settings.feature(name).fallback_mode if firing else "normal"
        return row.mode

    # ------------------------------------------------------------------ what the cycles stored

    def _fill_results(self, out: _Families, data: MetricsData, _now: datetime) -> None:
        limits = self.settings.metrics
        names = sorted({*data.latest, *data.measured, *data.baselines, *data.triggers, *data.proposals})
        for name in names:
            feature = self.settings.feature(name)
            latest, measured = data.latest.get(name), data.measured.get(name)
            latest_result = CycleResult.from_json(latest.result) if latest is not None else None
            measured_result = CycleResult.from_json(measured.result) if measured is not None else None
            quality = measured_result.quality if measured_result is not None else {}
            scopes, dropped = self._scopes(name, data, quality, limits.max_scopes_per_feature)
            out.add("aiqm_scopes_dropped", (name,), dropped)
            self._quality(out, name, measured, quality, scopes, feature.confidence)
            self._baseline(out, name, data, feature.retrain_drop, feature.fallback_drop)
            self._triggers(out, name, data, scopes, has_cycle=latest is not None)
            if latest is not None and latest_result is not None:
                self._latest(out, name, latest, latest_result)
                self._drift(out, name, latest_result, limits.max_signals_per_feature)
                effects = {
                    "wasserstein_scaled": feature.drift.numeric_effect,
                    "js_distance": feature.drift.categorical_effect,
                }
                for measure, threshold in effects.items():
                    out.add("aiqm_drift_effect_threshold", (name, measure), threshold)
            judged = next((r for r in (measured_result, latest_result) if r is not None and r.judges), None)
            if judged is not None:
                self._agreement(out, name, judged)

    @staticmethod
    def _scopes(
        name: str, data: MetricsData, quality: Mapping[str, ScopeQuality], limit: int
    ) -> tuple[frozenset[str], int]:
        """The segment scopes to export (the same for every metric of the feature), and how many
        were left out: scopes with a pending or firing trigger first, then the most labelled."""
        triggers = data.triggers.get(name, [])
        active = {t.scope for t in triggers if t.state in ("pending", "firing")}
        every = {s for s in quality if s.startswith("segment:")}
        every |= {t.scope for t in triggers if t.scope.startswith("segment:")}

        def rank(scope: str) -> tuple[int, float, str]:
            labelled = float(quality[scope].labelled) if scope in quality else 0.0
            return (0 if scope in active else 1, -labelled, scope)

        kept = sorted(every, key=rank)[:limit]
        return frozenset(kept), len(every) - len(kept)

    @staticmethod
    def _quality(
        out: _Families,
        name: str,
        measured: CycleRow | None,
        quality: Mapping[str, ScopeQuality],
        scopes: frozenset[str],
        confidence: float,
    ) -> None:
        if measured is None:
            return
        out.add("aiqm_quality_cycle_timestamp_seconds", (name,), _ts(measured.at))
        out.add("aiqm_quality_confidence_level", (name,), confidence)
        for scope, values in sorted(quality.items()):
            if scope != "all" and scope not in scopes:
                continue
            labels = (name, scope)
            out.add("aiqm_quality_pass_rate", labels, _number(values.value))
            out.add("aiqm_quality_pass_rate_lower", labels, _number(values.low))
            out.add("aiqm_quality_pass_rate_upper", labels, _number(values.high))
            if scope == "all":
                out.add("aiqm_quality_labelled_outputs", (name,), _number(values.labelled))
        if "all" not in quality:  # an old cycle row: the columns have the overall numbers
            out.add("aiqm_quality_pass_rate", (name, "all"), measured.pass_rate)
            out.add("aiqm_quality_pass_rate_lower", (name, "all"), measured.pass_rate_low)
            out.add("aiqm_quality_pass_rate_upper", (name, "all"), measured.pass_rate_high)
            out.add("aiqm_quality_labelled_outputs", (name,), measured.labelled)

    @staticmethod
    def _baseline(out: _Families, name: str, data: MetricsData, retrain: float, fallback: float) -> None:
        out.add("aiqm_baseline_proposals", (name,), data.proposals.get(name, 0))
        baseline = data.baselines.get(name)
        if baseline is None:
            return
        out.add("aiqm_baseline_version", (name,), baseline.version)
        out.add("aiqm_quality_baseline_pass_rate", (name,), baseline.pass_rate)
        out.add("aiqm_quality_baseline_pass_rate_lower", (name,), baseline.pass_rate_low)
        out.add("aiqm_quality_baseline_pass_rate_upper", (name,), baseline.pass_rate_high)
        if baseline.pass_rate is not None:
            out.add("aiqm_quality_retrain_threshold", (name,), max(0.0, baseline.pass_rate - retrain))
            out.add("aiqm_quality_fallback_threshold", (name,), max(0.0, baseline.pass_rate - fallback))

    @staticmethod
    def _triggers(
        out: _Families, name: str, data: MetricsData, scopes: frozenset[str], *, has_cycle: bool
    ) -> None:
        seen: set[tuple[str, str]] = set()
        for trigger in data.triggers.get(name, []):
            if trigger.scope.startswith("segment:") and trigger.scope not in scopes:
                continue
            labels = (name, trigger.trigger, trigger.scope)
            seen.add((trigger.trigger, trigger.scope))
            out.add("aiqm_trigger_firing", labels, 1 if trigger.state == "firing" else 0)
            if trigger.state == "pending":
                out.add("aiqm_trigger_pending", labels, 1)
            if trigger.state in ("pending", "firing"):
                out.add("aiqm_trigger_since_timestamp_seconds", labels, _ts(trigger.since))
        if has_cycle:
            for trigger_name in STANDARD_TRIGGERS:
                if (trigger_name, "all") not in seen:
                    out.add("aiqm_trigger_firing", (name, trigger_name, "all"), 0)

    @staticmethod
    def _latest(out: _Families, name: str, latest: CycleRow, result: CycleResult) -> None:
        out.add("aiqm_last_cycle_success_timestamp_seconds", (name,), _ts(latest.finished_at))
        out.add("aiqm_last_cycle_scheduled_timestamp_seconds", (name,), _ts(latest.at))
        out.add("aiqm_last_cycle_duration_seconds", (name,), latest.duration_seconds)
        out.add("aiqm_window_outputs", (name,), latest.outputs)
        out.add("aiqm_next_sample_size", (name,), _number(result.next_sample_size))
        actions = (result.actions or {}).get("all") or {}
        total = sum(v for v in (_number(x) for x in actions.values()) if v is not None)
        if total > 0:
            for action in USER_ACTIONS:
                out.add("aiqm_user_action_ratio", (name, action), (_number(actions.get(action)) or 0) / total)
        cost = result.cost
        if cost is not None:
            spent = _number(cost.cost_usd)
            reported = _number(cost.outputs_with_cost) or 0
            if spent is not None and reported > 0:
                out.add("aiqm_window_cost_usd", (name,), spent)
                out.add("aiqm_cost_per_output_usd", (name,), spent / reported)
                accepted = _number(actions.get("accepted")) or 0
                if accepted > 0:
                    out.add("aiqm_cost_per_accepted_output_usd", (name,), spent / accepted)

    @staticmethod
    def _drift(out: _Families, name: str, result: CycleResult, limit: int) -> None:
        entries = sorted(
            (e for e in result.drift_entries if e.signal), key=lambda e: (not e.drifted, e.signal)
        )
        kept = entries[:limit]
        out.add("aiqm_drift_signals_dropped", (name,), len(entries) - len(kept))
        for entry in kept:
            signal, test = entry.signal, entry.test
            out.add("aiqm_drift_score", (name, signal, test), _number(entry.statistic))
            out.add("aiqm_drift_p_value", (name, signal, test), _number(entry.p_value))
            if entry.effect_name:
                out.add("aiqm_drift_effect_size", (name, signal, entry.effect_name), _number(entry.effect))
            out.add("aiqm_drift_detected", (name, signal), 1 if entry.drifted else 0)

    @staticmethod
    def _agreement(out: _Families, name: str, result: CycleResult) -> None:
        for judge, summary in sorted(result.judges.items()):
            out.add("aiqm_judge_agreement_kappa", (name, judge), _number(summary.kappa))
            out.add("aiqm_judge_agreement_ratio", (name, judge), _number(summary.agreement))
            out.add("aiqm_judge_agreement_pairs", (name, judge), _number(summary.n))


# --------------------------------------------------------------------------- the exposition


_go_float: Callable[[float], str] = floatToGoString
"""How Go (and so Prometheus) writes a float: +Inf, NaN, 1.5e+09."""


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class TextExposition:
    """The Prometheus text format (0.0.4) of a registry, as `prometheus_client.generate_latest`
    writes it, minus its per-sample name validation (ours are fixed, valid names): a family
    yielded again as the same object reuses its text from the previous scrape."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._texts: dict[int, tuple[Metric, str]] = {}

    def __call__(self) -> bytes:
        parts: list[str] = []
        texts: dict[int, tuple[Metric, str]] = {}
        for metric in self.registry.collect():
            known = self._texts.get(id(metric))
            text = known[1] if known is not None and known[0] is metric else self._render(metric)
            texts[id(metric)] = (metric, text)
            parts.append(text)
        self._texts = texts
        return "".join(parts).encode("utf-8")

    @staticmethod
    def _render(metric: Metric) -> str:
        name, kind = metric.name, metric.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        elif kind == "stateset":
            kind = "gauge"
        elif kind == "gaugehistogram":
            kind = "histogram"
        elif kind == "unknown":
            kind = "untyped"
        lines = [f"# HELP {name} {_escape_help(metric.documentation)}\n", f"# TYPE {name} {kind}\n"]
        created: list[str] = []
        for sample in metric.samples:
            if sample.labels:
                pairs = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(sample.labels.items()))
                line = f"{sample.name}{{{pairs}}} {_go_float(sample.value)}"
            else:
                line = f"{sample.name} {_go_float(sample.value)}"
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000):d}"
            suffix = sample.name[len(metric.name) :]
            (created if suffix in ("_created", "_gsum", "_gcount") else lines).append(line + "\n")
        if created:  # as generate_latest does: OpenMetrics-only samples become a gauge of their own
            return TextExposition._openmetrics_extras(metric, lines, created)
        return "".join(lines)

    @staticmethod
    def _openmetrics_extras(metric: Metric, lines: list[str], extras: list[str]) -> str:
        by_suffix: dict[str, list[str]] = {}
        for line in extras:
            suffix = line.split("{", 1)[0].split(" ", 1)[0][len(metric.name) :]
            by_suffix.setdefault(suffix, []).append(line)
        for suffix, group in sorted(by_suffix.items()):
            lines.append(f"# HELP {metric.name}{suffix} {_escape_help(metric.documentation)}\n")
            lines.append(f"# TYPE {metric.name}{suffix} gauge\n")
            lines.extend(group)
        return "".join(lines)


def build_registry(
    engine: Engine, settings: Settings, clock: Callable[[], datetime] | None = None
) -> CollectorRegistry:
    """A registry with the quality collector and the process's own metrics (CPU, memory, fds)."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector(engine, settings, clock))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
