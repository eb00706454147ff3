"""The cost of quality: what a feature cost to run, and to watch, in one cycle's week.

A week is a cycle's window. Model cost is the sum of the window's outputs' `signals.cost_usd`;
per accepted output it is that whole sum over the outputs users accepted, so rejected, retried,
edited and ignored outputs are paid for by the accepted ones. Judge cost is the cycle's
`judge_runs.cost_usd`; reviewer time is the `review_seconds` of the human labels of the cycle's
sample, priced at the feature's `review_hourly_usd`. Monitoring is judges plus reviewers; the
total is the model plus monitoring.

`week_costs` is pure (it adds up rows); `cycle_costs` reads them from the store. A feature
with `budget_usd_per_week` gets a `budget` event in `trigger_events` (so the webhooks deliver
it like any trigger transition) for each week whose total crosses it: `check_budget`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select

from monitor.config import FeatureSettings, Settings
from monitor.store.tables import judge_runs, labels, outputs, samples, trigger_events

COST_SIGNAL = "cost_usd"
BUDGET_TRIGGER = "budget"


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


def cycle_costs(engine: Engine, settings: Settings, feature: str, cycle: Mapping[str, Any]) -> WeekCosts:
    """The week of one stored cycle (a row of `cycles`), read from the store."""
    with engine.connect() as conn:
        window = conn.execute(
            select(outputs.c.signals, outputs.c.user_action).where(
                outputs.c.feature == feature,
                outputs.c.ts >= cycle["window_start"],
                outputs.c.ts < cycle["window_end"],
            )
        ).all()
        judged = conn.execute(
            select(judge_runs.c.cost_usd).where(
                judge_runs.c.feature == feature, judge_runs.c.cycle_at == cycle["at"]
            )
        ).scalars()
        judge_list = list(judged)
        reviewed = conn.execute(
            select(labels.c.review_seconds)
            .select_from(
                samples.join(
                    labels,
                    and_(labels.c.feature == samples.c.feature, labels.c.output_id == samples.c.output_id),
                )
            )
            .where(
                samples.c.feature == feature,
                samples.c.cycle_at == cycle["at"],
                labels.c.source_kind == "human",
            )
        ).scalars()
        review_list = list(reviewed)
    return week_costs(
        feature,
        cycle,
        settings.feature(feature),
        ((row[0], row[1]) for row in window),
        judge_list,
        review_list,
    )


def check_budget(
    engine: Engine, settings: Settings, feature: str, cycle: Mapping[str, Any], now: datetime
) -> WeekCosts | None:
    """Record a `budget` event for a week over the feature's budget (once per week); the costs if over."""
    config = settings.feature(feature)
    if config.budget_usd_per_week is None:
        return None
    costs = cycle_costs(engine, settings, feature, cycle)
    if not costs.over_budget:
        return None
    with engine.begin() as conn:
        seen = conn.execute(
            select(trigger_events.c.pk).where(
                trigger_events.c.feature == feature,
                trigger_events.c.trigger == BUDGET_TRIGGER,
                trigger_events.c.cycle_at == cycle["at"],
            )
        ).first()
        if seen is None:
            conn.execute(
                trigger_events.insert().values(
                    feature=feature,
                    trigger=BUDGET_TRIGGER,
                    scope="all",
                    from_state="ok",
                    to_state="firing",
                    at=now,
                    cycle_at=cycle["at"],
                    owner=config.decision_owner or config.owner,
                    reason=(
                        f"the week's cost ${costs.total_usd:,.2f} (model ${costs.model_usd:,.2f}, "
                        f"monitoring ${costs.monitoring_usd:,.2f}) is over the budget "
                        f"${config.budget_usd_per_week:,.2f}"
                    ),
                    evidence=costs.to_json(),
                )
            )
    return costs


def format_costs(costs: WeekCosts) -> list[tuple[str, str]]:
    """The cost table's rows: (item, amount)."""

    def usd(value: float | None, places: int = 2) -> str:
        return "n/a" if value is None else f"${value:,.{places}f}"

    rows = [
        ("outputs (with a cost)", f"{costs.outputs:,} ({costs.outputs_with_cost:,})"),
        ("accepted / rejected / retried", f"{costs.accepted:,} / {costs.rejected:,} / {costs.retried:,}"),
        ("model cost", usd(costs.model_usd)),
        ("model cost per output", usd(costs.model_per_output_usd, 5)),
        ("model cost per accepted output", usd(costs.model_per_accepted_usd, 5)),
        ("of which rejected and retried outputs", usd(costs.wasted_usd)),
        (f"judge cost ({costs.judge_runs} runs)", usd(costs.judge_usd)),
        (
            f"reviewer time ({costs.review_seconds / 3600:.2f} h at ${costs.review_hourly_usd:g}/h)",
            usd(costs.reviewer_usd),
        ),
        ("cost of monitoring (judges + reviewers)", usd(costs.monitoring_usd)),
        ("total", usd(costs.total_usd)),
    ]
    if costs.budget_usd is not None:
        rows.append(("budget", f"{usd(costs.budget_usd)}{' (OVER)' if costs.over_budget else ''}"))
    return rows
