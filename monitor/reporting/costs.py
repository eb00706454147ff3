"""The cost of quality of a stored cycle's week, its budget check, and its table.

The arithmetic is `monitor.decide.costs.week_costs`; `cycle_costs` reads its rows from the
store. A feature with `budget_usd_per_week` gets a `budget` event in `trigger_events` (so the
webhooks deliver it like any trigger transition) for each week whose total crosses it:
`check_budget`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.decide.costs import WeekCosts, week_costs
from monitor.store import cost_queries

__all__ = ["BUDGET_TRIGGER", "WeekCosts", "check_budget", "cycle_costs", "format_costs"]

BUDGET_TRIGGER = "budget"


def cycle_costs(engine: Engine, settings: Settings, feature: str, cycle: Mapping[str, Any]) -> WeekCosts:
    """The week of one stored cycle (a row of `cycles`), read from the store."""
    with engine.connect() as conn:
        spent = cost_queries.week_spending(
            conn, feature, cycle["at"], cycle["window_start"], cycle["window_end"]
        )
    return week_costs(
        feature, cycle, settings.feature(feature), spent.window, spent.judge_costs, spent.review_seconds
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
        if not cost_queries.has_event(conn, feature, BUDGET_TRIGGER, cycle["at"]):
            cost_queries.add_event(
                conn,
                {
                    "feature": feature,
                    "trigger": BUDGET_TRIGGER,
                    "scope": "all",
                    "from_state": "ok",
                    "to_state": "firing",
                    "at": now,
                    "cycle_at": cycle["at"],
                    "owner": config.decision_owner or config.owner,
                    "reason": (
                        f"the week's cost ${costs.total_usd:,.2f} (model ${costs.model_usd:,.2f}, "
                        f"monitoring ${costs.monitoring_usd:,.2f}) is over the budget "
                        f"${config.budget_usd_per_week:,.2f}"
                    ),
                    "evidence": costs.to_json(),
                },
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
