"""What the judges read and write: the drawn outputs' contents, and every judge call's record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from monitor.store.tables import judge_runs, outputs

CHUNK = 500


@dataclass(frozen=True)
class OutputToJudge:
    """A stored output as a judge sees it."""

    output_id: str
    input: Any
    output: Any
    segment: Mapping[str, str] | None
    signals: Mapping[str, Any] | None
    model_version: str | None
    config_version: str | None


@dataclass(frozen=True)
class JudgeCall:
    """One judge call of a cycle (a row of `judge_runs`): its verdict, or why it has none."""

    feature: str
    cycle_at: datetime | None
    judge: str
    output_id: str
    verdict: str | None
    rationale: str | None
    cost_usd: float
    latency_ms: float | None
    error: str | None
    at: datetime


def outputs_to_judge(conn: Connection, feature: str, output_ids: Sequence[str]) -> dict[str, OutputToJudge]:
    """The stored outputs with these ids: input, output, segment, signals and versions."""
    found: dict[str, OutputToJudge] = {}
    columns = (
        outputs.c.output_id,
        outputs.c.input,
        outputs.c.output,
        outputs.c.segment,
        outputs.c.signals,
        outputs.c.model_version,
        outputs.c.config_version,
    )
    for start in range(0, len(output_ids), CHUNK):
        chunk = list(output_ids[start : start + CHUNK])
        query = select(*columns).where(outputs.c.feature == feature, outputs.c.output_id.in_(chunk))
        for row in conn.execute(query):
            found[row.output_id] = OutputToJudge(
                output_id=row.output_id,
                input=row.input,
                output=row.output,
                segment=row.segment,
                signals=row.signals,
                model_version=row.model_version,
                config_version=row.config_version,
            )
    return found


def judge_calls_of(conn: Connection, feature: str, cycle_at: datetime) -> list[JudgeCall]:
    """Every judge call made for the cycle, oldest first."""
    query = (
        select(judge_runs)
        .where(judge_runs.c.feature == feature, judge_runs.c.cycle_at == cycle_at)
        .order_by(judge_runs.c.pk)
    )
    return [
        JudgeCall(
            feature=row.feature,
            cycle_at=row.cycle_at,
            judge=row.judge,
            output_id=row.output_id,
            verdict=row.verdict,
            rationale=row.rationale,
            cost_usd=row.cost_usd,
            latency_ms=row.latency_ms,
            error=row.error,
            at=row.at,
        )
        for row in conn.execute(query)
    ]


def add_judge_calls(conn: Connection, calls: Sequence[JudgeCall]) -> None:
    if calls:
        conn.execute(insert(judge_runs), [asdict(call) for call in calls])
