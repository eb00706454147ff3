"""The families read from what the cycles stored: quality, baselines, triggers, drift, the
latest window's product signals and cost, judge agreement.

Cardinality is bounded by `metrics:` in the config: at most `max_scopes_per_feature` segment
scopes per feature (the ones with an active trigger first, then the most labelled), counted in
`aiqm_scopes_dropped`, and at most `max_signals_per_feature` drift signals (drifted first),
counted in `aiqm_drift_signals_dropped`.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.config import Settings
from monitor.cycle.result import CycleResult
from monitor.decide.quality import ScopeQuality
from monitor.metrics.families import Families, number, ts
from monitor.metrics.specs import STANDARD_TRIGGERS, USER_ACTIONS
from monitor.store.metric_queries import CycleRow, MetricsData

__all__ = ["fill_results"]


def fill_results(out: Families, data: MetricsData, settings: Settings) -> None:
    """The families read from what the cycles stored: quality, baselines, triggers, drift, the
    latest window, judge agreement."""
    limits = settings.metrics
    names = sorted({*data.latest, *data.measured, *data.baselines, *data.triggers, *data.proposals})
    for name in names:
        feature = settings.feature(name)
        latest, measured = data.latest.get(name), data.measured.get(name)
        latest_result = CycleResult.from_json(latest.result) if latest is not None else None
        measured_result = CycleResult.from_json(measured.result) if measured is not None else None
        quality = measured_result.quality if measured_result is not None else {}
        scopes, dropped = _scopes(name, data, quality, limits.max_scopes_per_feature)
        out.add("aiqm_scopes_dropped", (name,), dropped)
        _quality(out, name, measured, quality, scopes, feature.confidence)
        _baseline(out, name, data, feature.retrain_drop, feature.fallback_drop)
        _triggers(out, name, data, scopes, has_cycle=latest is not None)
        if latest is not None and latest_result is not None:
            _latest(out, name, latest, latest_result)
            _drift(out, name, latest_result, limits.max_signals_per_feature)
            effects = {
                "wasserstein_scaled": feature.drift.numeric_effect,
                "js_distance": feature.drift.categorical_effect,
            }
            for measure, threshold in effects.items():
                out.add("aiqm_drift_effect_threshold", (name, measure), threshold)
        judged = next((r for r in (measured_result, latest_result) if r is not None and r.judges), None)
        if judged is not None:
            _agreement(out, name, judged)


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


def _quality(
    out: Families,
    name: str,
    measured: CycleRow | None,
    quality: Mapping[str, ScopeQuality],
    scopes: frozenset[str],
    confidence: float,
) -> None:
    if measured is None:
        return
    out.add("aiqm_quality_cycle_timestamp_seconds", (name,), ts(measured.at))
    out.add("aiqm_quality_confidence_level", (name,), confidence)
    for scope, values in sorted(quality.items()):
        if scope != "all" and scope not in scopes:
            continue
        labels = (name, scope)
        out.add("aiqm_quality_pass_rate", labels, number(values.value))
        out.add("aiqm_quality_pass_rate_lower", labels, number(values.low))
        out.add("aiqm_quality_pass_rate_upper", labels, number(values.high))
        if scope == "all":
            out.add("aiqm_quality_labelled_outputs", (name,), number(values.labelled))
    if "all" not in quality:  # an old cycle row: the columns have the overall numbers
        out.add("aiqm_quality_pass_rate", (name, "all"), measured.pass_rate)
        out.add("aiqm_quality_pass_rate_lower", (name, "all"), measured.pass_rate_low)
        out.add("aiqm_quality_pass_rate_upper", (name, "all"), measured.pass_rate_high)
        out.add("aiqm_quality_labelled_outputs", (name,), measured.labelled)


def _baseline(out: Families, name: str, data: MetricsData, retrain: float, fallback: float) -> None:
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


def _triggers(
    out: Families, name: str, data: MetricsData, scopes: frozenset[str], *, has_cycle: bool
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
            out.add("aiqm_trigger_since_timestamp_seconds", labels, ts(trigger.since))
    if has_cycle:
        for trigger_name in STANDARD_TRIGGERS:
            if (trigger_name, "all") not in seen:
                out.add("aiqm_trigger_firing", (name, trigger_name, "all"), 0)


def _latest(out: Families, name: str, latest: CycleRow, result: CycleResult) -> None:
    out.add("aiqm_last_cycle_success_timestamp_seconds", (name,), ts(latest.finished_at))
    out.add("aiqm_last_cycle_scheduled_timestamp_seconds", (name,), ts(latest.at))
    out.add("aiqm_last_cycle_duration_seconds", (name,), latest.duration_seconds)
    out.add("aiqm_window_outputs", (name,), latest.outputs)
    out.add("aiqm_next_sample_size", (name,), number(result.next_sample_size))
    actions = (result.actions or {}).get("all") or {}
    total = sum(v for v in (number(x) for x in actions.values()) if v is not None)
    if total > 0:
        for action in USER_ACTIONS:
            out.add("aiqm_user_action_ratio", (name, action), (number(actions.get(action)) or 0) / total)
    cost = result.cost
    if cost is not None:
        spent = number(cost.cost_usd)
        reported = number(cost.outputs_with_cost) or 0
        if spent is not None and reported > 0:
            out.add("aiqm_window_cost_usd", (name,), spent)
            out.add("aiqm_cost_per_output_usd", (name,), spent / reported)
            accepted = number(actions.get("accepted")) or 0
            if accepted > 0:
                out.add("aiqm_cost_per_accepted_output_usd", (name,), spent / accepted)


def _drift(out: Families, name: str, result: CycleResult, limit: int) -> None:
    entries = sorted((e for e in result.drift_entries if e.signal), key=lambda e: (not e.drifted, e.signal))
    kept = entries[:limit]
    out.add("aiqm_drift_signals_dropped", (name,), len(entries) - len(kept))
    for entry in kept:
        signal, test = entry.signal, entry.test
        out.add("aiqm_drift_score", (name, signal, test), number(entry.statistic))
        out.add("aiqm_drift_p_value", (name, signal, test), number(entry.p_value))
        if entry.effect_name:
            out.add("aiqm_drift_effect_size", (name, signal, entry.effect_name), number(entry.effect))
        out.add("aiqm_drift_detected", (name, signal), 1 if entry.drifted else 0)


def _agreement(out: Families, name: str, result: CycleResult) -> None:
    for judge, summary in sorted(result.judges.items()):
        out.add("aiqm_judge_agreement_kappa", (name, judge), number(summary.kappa))
        out.add("aiqm_judge_agreement_ratio", (name, judge), number(summary.agreement))
        out.add("aiqm_judge_agreement_pairs", (name, judge), number(summary.n))
