"""A cycle's quality: the pass rate of its window, overall and per segment value.

Humans are the reference. The judges' verdicts on every output of the window (and the users'
actions, with the baseline's action model) are a covariate known on the whole window: the
design-weighted PPI++ estimate (monitor.stats.ppi.covariate_powered_pass_rate) lets the human
verdicts correct it, with a weight that falls to 0 when it stops agreeing with them. Where
only judges labelled, their verdicts alone are used (and named).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.stats import Estimate, weighted_pass_rate
from monitor.stats.ppi import PoweredPassRate, covariate_powered_pass_rate

MIN_PPI_PAIRS = 10
"""Human labels a scope needs before a covariate may stretch them (fewer: humans alone)."""


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
    judges: Mapping[str, bool] = field(default_factory=dict)
    """Every judge's verdict on this output (by judge name), unsure ones left out."""


@dataclass(frozen=True)
class WindowOutput:
    """One output of the window as the estimate sees it: its segment, the user's action and
    every judge's verdict on it (an output no judge labelled has none)."""

    segment: Mapping[str, str]
    action: str = "none"
    judges: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopeQuality:
    """One scope's pass rate, with the effective counts the sequential detectors consume (with a
    covariate, `PoweredPassRate.evidence_n`, not the interval's size)."""

    scope: str
    value: float
    low: float
    high: float
    labelled: int
    passes_eff: float
    n_eff: float
    method: str
    judge_weight: float | None = None
    """The tuned weight of the judges' verdicts in [0, 1] (None: no judge verdict was used)."""
    judges_saved: Mapping[str, float] = field(default_factory=dict)
    """Per judge, the human labels its verdicts were worth here (n_eff with it minus without)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "labelled": self.labelled,
            "passes_eff": self.passes_eff,
            "n_eff": self.n_eff,
            "method": self.method,
        }
        if self.judge_weight is not None:
            out["judge_weight"] = self.judge_weight
            out["judges_saved"] = dict(self.judges_saved)
        return out

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
            judge_weight=data.get("judge_weight"),
            judges_saved=dict(data.get("judges_saved") or {}),
        )


def segment_scopes(items: Sequence[LabelledItem]) -> list[str]:
    return sorted({f"segment:{key}={value}" for item in items for key, value in item.segment.items()})


def in_scope(item: LabelledItem, scope: str) -> bool:
    if scope == "all":
        return True
    key, _, value = scope.removeprefix("segment:").partition("=")
    return item.segment.get(key) == value


@dataclass(frozen=True)
class Covariates:
    """What the estimate may lean on besides the humans: the window's outputs with their judge
    verdicts and actions, which judges count, and the baseline's pass rate per user action."""

    window: Sequence[WindowOutput] = ()
    judge_names: Sequence[str] | None = None
    """The judges whose verdicts count (None: every judge seen in the window but the ignored)."""
    ignored_judges: frozenset[str] = frozenset()
    action_model: Mapping[str, float] | None = None

    def judges_in(self, outputs: Sequence[WindowOutput]) -> list[str]:
        seen = sorted({name for output in outputs for name in output.judges})
        if self.judge_names is not None:
            return [name for name in self.judge_names if name in seen]
        return [name for name in seen if name not in self.ignored_judges]


def estimate(
    items: Sequence[LabelledItem],
    scope: str,
    confidence: float,
    covariates: Covariates | None = None,
) -> ScopeQuality | None:
    """The scope's pass rate from the items in it, or None when nothing in it is labelled."""
    chosen = [item for item in items if in_scope(item, scope)]
    humans = [item for item in chosen if item.human is not None]
    covariates = covariates or Covariates()
    window = [output for output in covariates.window if _output_in_scope(output, scope)]
    if len(humans) >= MIN_PPI_PAIRS and window:
        judges = covariates.judges_in(window)
        if judges or covariates.action_model:
            return _powered(humans, window, judges, covariates.action_model, scope, confidence)
    found = _plain(chosen, humans, confidence)
    if found is None:
        return None
    result, labelled = found
    return ScopeQuality(
        scope,
        result.value,
        result.low,
        result.high,
        labelled,
        result.value * result.n,
        result.n,
        result.method,
    )


def _powered(
    humans: Sequence[LabelledItem],
    window: Sequence[WindowOutput],
    judges: Sequence[str],
    model: Mapping[str, float] | None,
    scope: str,
    confidence: float,
) -> ScopeQuality:
    """Humans correcting the judges' verdicts (and the users' actions) on the whole window."""
    fit = _fit(humans, window, judges, model, confidence)
    result = fit.estimate
    saved: dict[str, float] = {}
    if judges:
        without = _fit(humans, window, (), model, confidence).evidence_n if model else fit.kish_n
        for name in judges:
            alone = fit if len(judges) == 1 else _fit(humans, window, (name,), model, confidence)
            saved[name] = max(alone.evidence_n - without, 0.0)
    return ScopeQuality(
        scope=scope,
        value=result.value,
        low=result.low,
        high=result.high,
        labelled=len(humans),
        passes_eff=result.value * fit.evidence_n,
        n_eff=fit.evidence_n,
        method=result.method if fit.lam > 0 else "weighted-wilson",
        judge_weight=fit.lam if judges else None,
        judges_saved=saved,
    )


def _fit(
    humans: Sequence[LabelledItem],
    window: Sequence[WindowOutput],
    judges: Sequence[str],
    model: Mapping[str, float] | None,
    confidence: float,
) -> PoweredPassRate:
    cells: dict[str, int] = {}
    prediction: dict[str, float] = {}
    for output in window:
        cell, value = _cell(output.judges, output.action, judges, model)
        cells[cell] = cells.get(cell, 0) + 1
        if value is not None:
            prediction[cell] = value
    labelled = []
    for item in humans:
        cell, value = _cell(item.judges, item.action, judges, model)
        labelled.append(cell)
        if value is not None:
            prediction.setdefault(cell, value)
    return covariate_powered_pass_rate(
        [float(bool(item.human)) for item in humans],
        [item.inclusion_prob for item in humans],
        labelled,
        cells,
        prediction,
        confidence,
        # The action model was fitted on the baseline's labels, not these: with it alone, plain PPI
        # (weight 1) stays exactly unbiased and needs no tuning; judges' weights are tuned (PPI++).
        power=None if judges else 1.0,
        method="ppi" if judges else "ppi-actions",
    )


def _cell(
    verdicts: Mapping[str, bool],
    action: str,
    judges: Sequence[str],
    model: Mapping[str, float] | None,
) -> tuple[str, float | None]:
    """An output's covariate cell and its prediction: the mean of its judges' votes and, with an
    action model, the baseline's pass rate for its action (None: nothing known of it)."""
    votes = [verdicts.get(name) for name in judges]
    parts = ["".join("-" if v is None else ("p" if v else "f") for v in votes)]
    known = [float(v) for v in votes if v is not None]
    if model:
        parts.append(action)
        known.append(model.get(action, float(sum(model.values()) / len(model))))
    return "|".join(parts), (sum(known) / len(known) if known else None)


def _output_in_scope(output: WindowOutput, scope: str) -> bool:
    if scope == "all":
        return True
    key, _, value = scope.removeprefix("segment:").partition("=")
    return output.segment.get(key) == value


def _plain(
    chosen: Sequence[LabelledItem], humans: Sequence[LabelledItem], confidence: float
) -> tuple[Estimate, int] | None:
    """Humans alone (design-weighted), else the judges' verdicts alone (named so)."""
    if humans:
        weights = [i.inclusion_prob for i in humans]
        return weighted_pass_rate([float(bool(i.human)) for i in humans], weights, None, confidence), len(
            humans
        )
    judged = [item for item in chosen if item.judge is not None]
    if judged:
        plain = weighted_pass_rate(
            [float(bool(i.judge)) for i in judged], [i.inclusion_prob for i in judged], None, confidence
        )
        return Estimate(plain.value, plain.low, plain.high, plain.n, "judge-only", confidence), len(judged)
    return None


def cycle_quality(
    items: Sequence[LabelledItem],
    confidence: float,
    covariates: Covariates | None = None,
) -> dict[str, ScopeQuality]:
    """Every scope with labels: `all`, and `segment:<key>=<value>` for each tag value seen."""
    result = {}
    for scope in ["all", *segment_scopes(items)]:
        quality = estimate(items, scope, confidence, covariates)
        if quality is not None:
            result[scope] = quality
    return result
