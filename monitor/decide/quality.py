"""A cycle's quality: the pass rate of its review sample, overall and per segment value.

Humans are the reference. Where humans and judges both labelled the sample, the
prediction-powered estimate uses every judge verdict and lets the human verdicts correct
the judge's bias; where only one kind labelled, that kind alone is used (and named).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.stats import Estimate, prediction_powered_pass_rate, weighted_pass_rate
from monitor.stats.proxy import proxy_powered_pass_rate

MIN_PPI_PAIRS = 10
MIN_JUDGE_ONLY = 2  # PPI needs two judge-only items (monitor.stats.ppi); with one, the humans alone


@dataclass(frozen=True)
class LabelledItem:
    """One sampled output with the verdicts it has (None: no verdict of that kind, or unsure)."""

    output_id: str
    segment: Mapping[str, str]
    stratum: str
    inclusion_prob: float
    human: bool | None
    judge: bool | None
    action: str = "none"


@dataclass(frozen=True)
class ScopeQuality:
    """One scope's pass rate, with the effective counts the sequential detectors consume."""

    scope: str
    value: float
    low: float
    high: float
    labelled: int
    passes_eff: float
    n_eff: float
    method: str

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "labelled": self.labelled,
            "passes_eff": self.passes_eff,
            "n_eff": self.n_eff,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, scope: str, data: Mapping[str, Any]) -> ScopeQuality:
        return cls(
            scope=scope,
            value=data["value"],
            low=data["low"],
            high=data["high"],
            labelled=data["labelled"],
            passes_eff=data["passes_eff"],
            n_eff=data["n_eff"],
            method=data["method"],
        )


def segment_scopes(items: Sequence[LabelledItem]) -> list[str]:
    return sorted({f"segment:{key}={value}" for item in items for key, value in item.segment.items()})


def in_scope(item: LabelledItem, scope: str) -> bool:
    if scope == "all":
        return True
    key, _, value = scope.removeprefix("segment:").partition("=")
    return item.segment.get(key) == value


def estimate(
    items: Sequence[LabelledItem],
    scope: str,
    confidence: float,
    window_actions: Mapping[str, int] | None = None,
    action_model: Mapping[str, float] | None = None,
) -> ScopeQuality | None:
    """The scope's pass rate from the items in it, or None when nothing in it is labelled.

    With `window_actions` (what users did with every output of the window, in this scope)
    and an `action_model` (the baseline's pass rate per user action), the human labels
    correct a prediction from the actions (prediction-powered, see monitor.stats.proxy).
    """
    chosen = [item for item in items if in_scope(item, scope)]
    humans = [item for item in chosen if item.human is not None]
    judged = [item for item in chosen if item.judge is not None]
    both = [item for item in humans if item.judge is not None]
    judge_only = [item for item in judged if item.human is None]
    result: Estimate
    if len(both) >= MIN_PPI_PAIRS and len(judge_only) >= MIN_JUDGE_ONLY:
        result = prediction_powered_pass_rate(
            [float(bool(item.human)) for item in both],
            [float(bool(item.judge)) for item in both],
            [float(bool(item.judge)) for item in judge_only],
            confidence,
        )
        labelled = len(humans) + len(judge_only)
    elif humans and window_actions and action_model and len(humans) >= MIN_PPI_PAIRS:
        result = proxy_powered_pass_rate(
            [float(bool(i.human)) for i in humans],
            [i.inclusion_prob for i in humans],
            [i.action for i in humans],
            window_actions,
            action_model,
            confidence,
            power=1.0,  # the proxy was fitted on the baseline's labels: plain PPI stays exactly unbiased
        )
        labelled = len(humans)
    elif humans:
        result = weighted_pass_rate(
            [float(bool(i.human)) for i in humans], [i.inclusion_prob for i in humans], None, confidence
        )
        labelled = len(humans)
    elif judged:
        result = weighted_pass_rate(
            [float(bool(i.judge)) for i in judged], [i.inclusion_prob for i in judged], None, confidence
        )
        result = Estimate(result.value, result.low, result.high, result.n, "judge-only", confidence)
        labelled = len(judged)
    else:
        return None
    n_eff = _effective_n(result)
    return ScopeQuality(
        scope=scope,
        value=result.value,
        low=result.low,
        high=result.high,
        labelled=labelled,
        passes_eff=result.value * n_eff,
        n_eff=n_eff,
        method=result.method,
    )


def _effective_n(result: Estimate) -> float:
    """The sample size a plain proportion needs for this precision (PPI is worth more than its humans)."""
    if result.method == "ppi-actions":
        return result.n
    if result.method != "ppi":
        return result.n
    from monitor.stats._common import z_value

    half_width = (result.high - result.low) / 2
    if half_width <= 0:
        return result.n
    variance = (half_width / z_value(result.confidence)) ** 2
    p = min(max(result.value, 0.02), 0.98)
    return max(result.n, p * (1 - p) / variance)


def cycle_quality(
    items: Sequence[LabelledItem],
    confidence: float,
    window_actions: Mapping[str, Mapping[str, int]] | None = None,
    action_model: Mapping[str, float] | None = None,
) -> dict[str, ScopeQuality]:
    """Every scope with labels: `all`, and `segment:<key>=<value>` for each tag value seen."""
    result = {}
    for scope in ["all", *segment_scopes(items)]:
        actions = (window_actions or {}).get(scope)
        quality = estimate(items, scope, confidence, actions, action_model)
        if quality is not None:
            result[scope] = quality
    return result
