"""The cost of quality adds up from the stored outputs, judge runs and reviewers' timings; a week
over the feature's budget records one `budget` event the webhooks deliver."""

from __future__ import annotations

from pathlib import Path

import pytest
from digest_history import FEATURE, JUDGE_COST, REVIEW_SECONDS, build, settings_for
from sqlalchemy import Engine, select

from monitor.config import FeatureSettings
from monitor.decide.costs import week_costs
from monitor.reporting.costs import check_budget, cycle_costs
from monitor.store import cycle_queries as q
from monitor.store.tables import labels, outputs, samples, trigger_events


def test_week_costs_is_plain_arithmetic() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 6, tzinfo=UTC)
    cycle = {"at": at, "window_start": at, "window_end": at}
    rows = [
        ({"cost_usd": 0.01}, "accepted"),
        ({"cost_usd": 0.02}, "rejected"),
        ({"cost_usd": 0.03}, "retried"),
        ({"cost_usd": 0.04}, "accepted"),
        ({}, "edited"),
        (None, None),
    ]
    costs = week_costs(
        "f",
        cycle,
        FeatureSettings(review_hourly_usd=36.0, budget_usd_per_week=1.0),
        rows,
        [0.1, None],
        [100, None],
    )
    assert costs.outputs == 6 and costs.outputs_with_cost == 4 and costs.accepted == 2
    assert costs.model_usd == pytest.approx(0.10)
    assert costs.model_per_output_usd == pytest.approx(0.025)
    assert costs.model_per_accepted_usd == pytest.approx(0.05)  # rejected and retried paid by the accepted
    assert costs.wasted_usd == pytest.approx(0.05)
    assert costs.judge_usd == pytest.approx(0.1) and costs.judge_runs == 2
    assert costs.reviewer_usd == pytest.approx(1.0) and costs.reviews_timed == 1
    assert costs.monitoring_usd == pytest.approx(1.1) and costs.total_usd == pytest.approx(1.2)
    assert costs.over_budget


def test_cycle_costs_add_up_from_the_store(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for()
    times = build(engine, settings, tmp_path, weeks=6)
    with engine.connect() as conn:
        cycle = q.cycle_row(conn, FEATURE, times[-1])
        assert cycle is not None
        window = conn.execute(
            select(outputs.c.signals, outputs.c.user_action).where(
                outputs.c.feature == FEATURE,
                outputs.c.ts >= cycle["window_start"],
                outputs.c.ts < cycle["window_end"],
            )
        ).all()
        drawn = conn.execute(
            select(samples.c.output_id).where(samples.c.feature == FEATURE, samples.c.cycle_at == cycle["at"])
        ).scalars()
        drawn_ids = set(drawn)
        human = conn.execute(
            select(labels.c.output_id).where(labels.c.feature == FEATURE, labels.c.source_kind == "human")
        ).scalars()
        reviewed = len(drawn_ids & set(human))
    costs = cycle_costs(engine, settings, FEATURE, cycle)
    model = sum(r[0]["cost_usd"] for r in window)
    accepted = sum(r[1] == "accepted" for r in window)
    assert costs.outputs == len(window) == cycle["outputs"]
    assert costs.model_usd == pytest.approx(model) == pytest.approx(cycle["result"]["cost"]["cost_usd"])
    assert costs.model_per_accepted_usd == pytest.approx(model / accepted)
    assert costs.judge_runs == len(drawn_ids) and costs.judge_usd == pytest.approx(
        JUDGE_COST * len(drawn_ids)
    )
    assert reviewed > 0 and costs.reviews_timed == reviewed
    assert costs.reviewer_usd == pytest.approx(reviewed * REVIEW_SECONDS / 3600 * 60.0)
    assert costs.total_usd == pytest.approx(costs.model_usd + costs.judge_usd + costs.reviewer_usd)


def test_a_week_over_budget_records_one_budget_event(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(budget_usd_per_week=0.5)
    times = build(engine, settings, tmp_path, weeks=4)
    with engine.connect() as conn:
        cycle = q.cycle_row(conn, FEATURE, times[-1])
    assert cycle is not None
    first = check_budget(engine, settings, FEATURE, cycle, times[-1])
    again = check_budget(engine, settings, FEATURE, cycle, times[-1])
    assert first is not None and again is not None and first.over_budget
    with engine.connect() as conn:
        events = (
            conn.execute(trigger_events.select().where(trigger_events.c.trigger == "budget")).mappings().all()
        )
    assert (
        len(events) == 1
        and events[0]["to_state"] == "firing"
        and events[0]["owner"] == "ops-lead@example.com"
    )
    assert "over the budget $0.50" in events[0]["reason"]
    assert check_budget(engine, settings_for(), FEATURE, cycle, times[-1]) is None  # no budget, no event


def test_reviewer_time_and_cost_are_exported(engine: Engine, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from monitor.metrics.exporter import build_registry

    settings = settings_for(budget_usd_per_week=25.0)
    times = build(engine, settings, tmp_path, weeks=4)
    with engine.connect() as conn:
        cycle = q.cycle_row(conn, FEATURE, times[-1])
    assert cycle is not None
    costs = cycle_costs(engine, settings, FEATURE, cycle)
    text = generate_latest(build_registry(engine, settings, lambda: times[-1])).decode()
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(
            ("aiqm_review_time_seconds{", "aiqm_reviewer_cost_usd{", "aiqm_budget_usd_per_week{")
        )
    }
    assert costs.review_seconds > 0
    assert values["aiqm_review_time_seconds"] == pytest.approx(costs.review_seconds)
    assert values["aiqm_reviewer_cost_usd"] == pytest.approx(costs.reviewer_usd)
    assert values["aiqm_budget_usd_per_week"] == 25.0
