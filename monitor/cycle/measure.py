"""What a cycle measures in the store: its sample's verdicts and quality, its judges' agreement,
and what the window's users did and the outputs cost; the baseline's action model that makes
each human label worth more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.config import FeatureSettings
from monitor.cycle.result import CycleResult, WindowCost
from monitor.decide.judge_agreement import JudgePairs, judge_pairs
from monitor.decide.quality import Covariates, LabelledItem, ScopeQuality, WindowOutput, cycle_quality
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.window_judge_queries import JUDGE_PREFIX, window_judge_verdicts

COST_SIGNAL = "cost_usd"
ACTION_PRIOR = 2.0
"""Pseudo-labels pulling a rarely seen action's pass rate towards the baseline's."""


def labelled_items(sample: Sequence[q.SampledOutput], judge_source: str | None = None) -> list[LabelledItem]:
    """Each drawn output with its human verdict, that judge's verdict if one is named, and
    every judge's verdict."""
    items = []
    for item in sample:
        human = judge = None
        judges: dict[str, bool] = {}
        for source, verdict in sorted(item.verdicts.items()):
            if verdict == "unsure":
                continue
            if source.startswith("human:") and human is None:
                human = verdict == "pass"
            elif source.startswith(JUDGE_PREFIX):
                judges[source.removeprefix(JUDGE_PREFIX)] = verdict == "pass"
                if source == judge_source:
                    judge = verdict == "pass"
        items.append(
            LabelledItem(
                item.output_id,
                item.segment,
                item.stratum,
                item.inclusion_prob,
                human,
                judge,
                item.user_action or "none",
                judges,
            )
        )
    return items


def window_outputs(conn: Connection, feature: str, start: datetime, end: datetime) -> list[WindowOutput]:
    """Every output of the window with every judge's verdict on it (unsure ones left out)."""
    return [
        WindowOutput(
            output.segment,
            output.user_action or "none",
            {name: verdict == "pass" for name, verdict in output.verdicts.items() if verdict != "unsure"},
        )
        for output in window_judge_verdicts(conn, feature, start, end)
    ]


def quality_of(
    conn: Connection,
    feature: str,
    at: datetime,
    settings: FeatureSettings,
    window_start: datetime,
    model: Mapping[str, float] | None = None,
) -> dict[str, ScopeQuality]:
    """The quality of the cycle's window per scope, from the labels it has now: the sample's
    human verdicts correcting the judges' verdicts on every output of the window (the judge
    named by `quality_judge`, else every judge that labelled it but the configured rule
    judges) and the users' actions."""
    items = labelled_items(q.sample_of(conn, feature, at), settings.quality_judge_source)
    named = settings.quality_judge
    covariates = Covariates(
        window=window_outputs(conn, feature, window_start, at),
        judge_names=None if named is None else [named],
        ignored_judges=frozenset(judge.name for judge in settings.judges if judge.kind != "llm"),
        action_model=model,
    )
    return cycle_quality(items, settings.confidence, covariates)


def judges_of(conn: Connection, feature: str, at: datetime) -> dict[str, JudgePairs]:
    """Per judge, its verdicts on the cycle's sample paired with the humans'."""
    return judge_pairs(item.verdicts for item in q.sample_of(conn, feature, at))


def action_counts(window: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per scope, how many outputs of the window met each user action ("none": not reported)."""
    counts: dict[str, Counter[str]] = {"all": Counter()}
    for record in window:
        action = record.get("user_action") or "none"
        counts["all"][action] += 1
        for key, value in (record.get("segment") or {}).items():
            counts.setdefault(f"segment:{key}={value}", Counter())[action] += 1
    return {scope: dict(counter) for scope, counter in counts.items()}


def window_cost(window: Sequence[Mapping[str, Any]]) -> WindowCost:
    """What the window's outputs cost (their `signals.cost_usd`), and how many reported a cost.

    Stored with the cycle so that `/metrics` can state cost per output and per accepted output
    without reading the window again.
    """
    total, reported = 0.0, 0
    for record in window:
        value = (record.get("signals") or {}).get(COST_SIGNAL)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            total += float(value)
            reported += 1
    return WindowCost(cost_usd=total, outputs_with_cost=reported)


MIN_ACTIONS = 2  # one action alone predicts nothing: every output would get the same score


def action_model(baseline_row: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The baseline's pass rate per user action: the proxy that makes each label worth more."""
    if baseline_row is None or baseline_row["pass_rate"] is None:
        return None
    table = (baseline_row["segments"] or {}).get("actions") or {}
    if len(table) < MIN_ACTIONS:
        return None
    prior = float(baseline_row["pass_rate"])
    return {
        action: (passes + ACTION_PRIOR * prior) / (n + ACTION_PRIOR) for action, (passes, n) in table.items()
    }


def action_model_of(conn: Connection, feature: str, result: CycleResult) -> dict[str, float] | None:
    """The action model a cycle's quality was computed with (the active baseline's for a cycle
    stored before the version was recorded)."""
    if not result.action_model_recorded:
        return action_model(q.active_baseline(conn, feature))
    version = result.action_model_version
    return None if version is None else action_model(fq.baseline_row(conn, feature, version))
