"""Replay a logged history through the same cycle code as the daemon, with a simulated clock.

The outputs go into a temporary SQLite store; at each scheduled cycle the sampler draws from
the window exactly as in production, and simulated reviewers label the drawn items whose
label is in the labels file (the others stay unlabelled); recorded judge verdicts are given to
every cycle whose window holds their output. CONTRACT section 5 fixes the output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cycle.runner import CycleRunner
from monitor.decide.schedule import fire_times
from monitor.errors import InputError
from monitor.intake.ingest import LABELS, OUTPUTS, import_file, read_records
from monitor.judges import build_labellers
from monitor.records import LabelRecord
from monitor.store import cycle_queries as q
from monitor.store.engine import make_engine, migrate
from monitor.store.window_judge_queries import JUDGE_PREFIX, window_judge_verdicts
from monitor.store.writes import insert_labels


@dataclass
class SimulatedClock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


Recorded = tuple[str, str, str | None]
"""A recorded label: verdict, source, reason."""


class RecordedReviewers:
    """Reviewers who label a drawn output the way the labels file says, at the cycle's time.

    Only `human:` (and other non-judge) labels answer a reviewer's question; a `judge:<name>`
    label is that judge's verdict, handed to every cycle whose window holds the output
    (`judge_labels`), as if the judge ran there. An output may have both kinds, and several
    judges (CONTRACT section 5).
    """

    def __init__(
        self,
        verdicts: dict[tuple[str, str], Recorded],
        judged: dict[tuple[str, str], list[Recorded]] | None = None,
    ) -> None:
        self.verdicts = verdicts
        self.judged = judged or {}

    @classmethod
    def from_file(cls, path: str) -> RecordedReviewers:
        verdicts: dict[tuple[str, str], Recorded] = {}
        judged: dict[tuple[str, str], dict[str, Recorded]] = {}
        for record in read_records(path, LABELS):
            key = (record.feature, record.output_id)
            known = (record.verdict, record.source, record.reason)
            if record.source.startswith(JUDGE_PREFIX):
                judged.setdefault(key, {})[record.source] = known  # the last line of a judge wins
            else:
                verdicts[key] = known
        return cls(verdicts, {key: list(by_source.values()) for key, by_source in judged.items()})

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]:
        """The reviewers' answers for the drawn outputs they labelled."""
        return [
            _record(feature, output_id, self.verdicts[(feature, output_id)], at)
            for output_id in output_ids
            if (feature, output_id) in self.verdicts
        ]

    def judge_labels(self, feature: str, output_ids: Iterable[str], at: datetime) -> list[LabelRecord]:
        """Every recorded judge verdict on these outputs (the window of a cycle), dated `at`."""
        return [
            _record(feature, output_id, known, at)
            for output_id in output_ids
            for known in self.judged.get((feature, output_id), ())
        ]


def _record(feature: str, output_id: str, known: Recorded, at: datetime) -> LabelRecord:
    verdict, source, reason = known
    return LabelRecord(
        output_id=output_id,
        feature=feature,
        verdict=verdict,  # type: ignore[arg-type]
        source=source,
        reason=reason,
        ts=at,
    )


def give_judge_labels(
    engine: Engine, reviewers: RecordedReviewers, feature: str, window_days: float, at: datetime
) -> None:
    """Store the recorded judges' verdicts on the cycle's window before the cycle runs; a
    verdict already stored unchanged (an earlier, overlapping window) stays as it was."""
    with engine.begin() as conn:
        start = at - timedelta(days=window_days)
        window = [output.output_id for output in window_judge_verdicts(conn, feature, start, at)]
        records = reviewers.judge_labels(feature, window, at)
        if records:
            insert_labels(conn, records, at)


def cycle_times(schedule: str, window_days: float, first: datetime, last: datetime) -> list[datetime]:
    """Scheduled times whose window is full of history: from one window after the first output
    to the last time whose window still holds an output."""
    window = timedelta(days=window_days)
    return list(fire_times(schedule, first + window, last + window))


def run_backtest(
    outputs_path: str, labels_path: str, settings: Settings, seed: int = 0, work_dir: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aiqm-backtest-", dir=work_dir) as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'backtest.sqlite3'}")
        migrate(engine)
        clock = SimulatedClock()
        summary = import_file(engine, outputs_path, OUTPUTS, clock)
        if summary.bad_lines:
            bad = summary.bad_lines[0]
            raise InputError(bad.message, source=outputs_path, line=bad.line, field=bad.field)
        reviewers = RecordedReviewers.from_file(labels_path)
        # The rule judges run as in production; LLM judges do not (a replay must not spend).
        judges = build_labellers(settings, engine, clock, llm=False)
        runner = CycleRunner(engine, settings, clock, labellers=[reviewers, *judges], seed=seed)
        result: dict[str, Any] = {"features": {}}
        with engine.connect() as conn:
            rows = [q.feature_row(conn, name) for name in q.feature_names(conn)]
        for row in rows:
            if row is None or row["first_output_ts"] is None:
                continue
            feature = row["name"]
            feature_settings = settings.feature(feature)
            cycles = []
            for at in cycle_times(
                feature_settings.schedule,
                feature_settings.window_days,
                row["first_output_ts"],
                row["last_output_ts"],
            ):
                clock.now = at
                give_judge_labels(engine, reviewers, feature, feature_settings.window_days, at)
                cycles.append(runner.run(feature, at).to_json())
            result["features"][feature] = {"cycles": cycles}
        engine.dispose()
    return result
