"""A small real history for the exporter's tests: simulated outputs, cycles run by the daemon's code.

One feature (`support-reply`) over eight weeks, segmented by language and channel: four good
weeks make the baseline, then quality collapses so that `retrain` and `fallback` fire. Simulated
reviewers label what each cycle draws, and a rule judge labels it too, so every kind of result
the exporter reads (quality per scope, drift, judge agreement, costs, triggers) is in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import CHANNELS, LANGUAGES, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.judges import build_labellers

FEATURE = "support-reply"
WEEKS = 8


def make_settings(**extra: object) -> Settings:
    """The history's settings (a rule judge, the feature's owners), plus `extra` top-level keys."""
    return Settings(
        defaults={"judges": [{"kind": "length", "min_chars": 60}]},
        features={FEATURE: {"owner": "support-quality@example.com", "decision_owner": "head@example.com"}},
        **extra,  # type: ignore[arg-type]
    )


SETTINGS = make_settings()


@dataclass
class History:
    spec: HistorySpec
    clock: SimulatedClock
    runner: CycleRunner
    cycle_times: list[datetime]

    def run(self, week: int) -> None:
        at = self.cycle_times[week - 1]
        self.clock.now = at + timedelta(minutes=5)
        self.runner.run(FEATURE, at)


def build_history(engine: Engine, folder: Path, *, weeks: int = WEEKS, run: int | None = None) -> History:
    """Ingest the history and run its first `run` weekly cycles (default: all of them)."""
    spec = HistorySpec(
        feature=FEATURE,
        weeks=weeks,
        volume=150,
        pass_rate=[(0, 0.93), (3.99, 0.93), (4, 0.45)],
        segments={"language": LANGUAGES, "channel": CHANNELS},
        seed=11,
    )
    outputs, labels, _ = write_history(spec, folder)
    times = [spec.start + week * WEEK + timedelta(hours=6) for week in range(1, weeks + 1)]
    clock = SimulatedClock(times[-1])
    import_file(engine, str(outputs), OUTPUTS, clock)
    reviewers = RecordedReviewers.from_file(str(labels))
    labellers = [*build_labellers(SETTINGS, engine, clock, llm=False), reviewers]
    history = History(spec, clock, CycleRunner(engine, SETTINGS, clock, labellers=labellers), times)
    for week in range(1, (weeks if run is None else run) + 1):
        history.run(week)
    return history
