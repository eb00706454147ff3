"""The cost of quality, added up: what a feature cost to run, and to watch, in one cycle's week.

A week is a cycle's window. Model cost is the sum of the window's outputs' `signals.cost_usd`;
per accepted output it is that whole sum over the outputs users accepted, so rejected, retried,
edited and ignored outputs are paid for by the accepted ones. Judge cost is the cycle's
`judge_runs.cost_usd`; reviewer time is the `review_seconds` of the human labels of the cycle's
sample, priced at the feature's `review_hourly_usd`. Monitoring is judges plus reviewers; the
total is the model plus monitoring. Plain arithmetic over rows the caller read
(`monitor.reporting.costs` reads them from the store).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from monitor.config import FeatureSettings

COST_SIGNAL = "cost_usd"


@dataclass(frozen=True)
class WeekCosts:
    feature: str
    cycle_at: str
    window_start: str
    window_end: str
    outputs: int
    outputs_with_cost: int
    accepted: int
    rejected: int
    retried: int
    model_usd: float
    model_per_output_usd: float | None
    model_per_accepted_usd: float | None
    wasted_usd: float
    judge_usd: float
    judge_runs: int
    review_seconds: float
    reviews_timed: int
    review_hourly_usd: float
    reviewer_usd: float
    monitoring_usd: float
    total_usd: float
    budget_usd: float | None
    over_budget: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


def week_costs(
    feature: str,
    cycle: Mapping[str, Any],
    settings: FeatureSettings,
    window_outputs: Iterable[tuple[Mapping[str, Any] | None, str | None]],
    judge_costs: Iterable[float | None],
    review_seconds: Iterable[float | None],
) -> WeekCosts:
    """Add up one week: (signals, user_action) per output, judge run costs, reviewers' seconds."""
    count = with_cost = accepted = rejected = retried = 0
    model = wasted = 0.0
    for signals, action in window_outputs:
        count += 1
        cost = _number((signals or {}).get(COST_SIGNAL))
        if cost is not None:
            with_cost += 1
            model += cost
        if action == "accepted":
            accepted += 1
        elif action in ("rejected", "retried"):
            rejected += action == "rejected"
            retried += action == "retried"
            wasted += cost or 0.0
    judges = [float(c or 0.0) for c in judge_costs]
    timed = [float(s) for s in review_seconds if s is not None]
    seconds = sum(timed)
    reviewer = seconds / 3600.0 * settings.review_hourly_usd
    monitoring = sum(judges) + reviewer
    total = model + monitoring
    budget = settings.budget_usd_per_week
    return WeekCosts(
        feature=feature,
        cycle_at=cycle["at"].isoformat(),
        window_start=cycle["window_start"].isoformat(),
        window_end=cycle["window_end"].isoformat(),
        outputs=count,
        outputs_with_cost=with_cost,
        accepted=accepted,
        rejected=rejected,
        retried=retried,
        model_usd=model,
        model_per_output_usd=model / with_cost if with_cost else None,
        model_per_accepted_usd=model / accepted if accepted else None,
        wasted_usd=wasted,
        judge_usd=sum(judges),
        judge_runs=len(judges),
        review_seconds=seconds,
        reviews_timed=len(timed),
        review_hourly_usd=settings.review_hourly_usd,
        reviewer_usd=reviewer,
        monitoring_usd=monitoring,
        total_usd=total,
        budget_usd=budget,
        over_budget=budget is not None and total > budget,
    )
