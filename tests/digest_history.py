"""A store holding the demo's degrading feature ("ticket-triage"), its cycles replayed, for the
cost, report and digest tests; reviewers' timings and judge costs are added so every cost shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, update

from monitor.config import FeatureSettings, Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock, cycle_times
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import demo_specs, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.store import cycle_queries as q
from monitor.store.tables import judge_runs, labels, samples

FEATURE = "ticket-triage"
REVIEW_SECONDS = 45.0
JUDGE_COST = 0.002


def settings_for(**extra: object) -> Settings:
    return Settings(
        features={
            FEATURE: FeatureSettings(
                owner="ops-ml@example.com",
                decision_owner="ops-lead@example.com",
                user_role="ops agents route tickets with it",
                allowed_actions=("suggest a queue",),
                blocked_actions=("close a ticket",),
                review_path="weekly sample on /review",
                fallback_behaviour="tickets go to the manual triage queue",
                known_limitations=("Spanish barely tested",),
                review_hourly_usd=60.0,
                **extra,  # type: ignore[arg-type]
            )
        }
    )


def build(engine: Engine, settings: Settings, folder: Path, weeks: int = 10) -> list[datetime]:
    """Ingest and replay the degrading feature; returns the cycle times."""
    spec = next(s for s in demo_specs(weeks) if s.feature == FEATURE)
    spec = replace(spec, volume=150)
    outputs_path, labels_path, _ = write_history(spec, folder)
    clock = SimulatedClock(spec.start)
    import_file(engine, str(outputs_path), OUTPUTS, clock)
    runner = CycleRunner(engine, settings, clock, [RecordedReviewers.from_file(str(labels_path))])
    with engine.connect() as conn:
        row = q.feature_row(conn, FEATURE)
    assert row is not None
    feature = settings.feature(FEATURE)
    times = cycle_times(feature.schedule, feature.window_days, row["first_output_ts"], row["last_output_ts"])
    for at in times:
        clock.now = at
        runner.run(FEATURE, at)
    with engine.begin() as conn:
        conn.execute(update(labels).where(labels.c.feature == FEATURE).values(review_seconds=REVIEW_SECONDS))
        drawn = conn.execute(samples.select().where(samples.c.feature == FEATURE)).mappings().all()
        conn.execute(
            judge_runs.insert(),
            [
                {
                    "feature": FEATURE,
                    "cycle_at": s["cycle_at"],
                    "judge": "llm",
                    "output_id": s["output_id"],
                    "verdict": "pass",
                    "cost_usd": JUDGE_COST,
                    "at": s["cycle_at"],
                }
                for s in drawn
            ],
        )
    return times
