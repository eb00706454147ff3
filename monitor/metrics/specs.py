"""Every metric `/metrics` exports: its name, type, labels and help text.

CONTRACT section 6 names the metrics dashboards and alert rules rely on; `METRICS` lists every
metric (the README's metric table follows it), in the order a scrape writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["METRICS", "MODES", "SPECS", "STANDARD_TRIGGERS", "USER_ACTIONS", "Kind", "MetricSpec"]

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

SPECS = {spec.name: spec for spec in METRICS}
