"""Every judge verdict on a cycle's window: the covariate the pass rate leans on (issue 13).

Judges may label every output of the window (an app that posts its LLM judge's verdict with
each output, a replay of recorded judges), not only the review sample; the estimate uses them
all. One row per output of the window, with the latest verdict of each judge on it (a label
is unique per feature, output and source, so "latest" is the stored one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, select

from monitor.store.tables import labels, outputs

JUDGE_PREFIX = "judge:"


@dataclass(frozen=True)
class JudgedOutput:
    """One output of the window: its segment, the user's action and each judge's verdict
    (judge name -> "pass", "fail" or "unsure"; empty when no judge labelled it)."""

    output_id: str
    segment: Mapping[str, str]
    user_action: str | None
    verdicts: dict[str, str]


def window_judge_verdicts(
    conn: Connection, feature: str, start: datetime, end: datetime, chunk: int = 20_000
) -> Iterator[JudgedOutput]:
    """The outputs logged in [start, end), each with every judge's verdict on it."""
    query = (
        select(
            outputs.c.output_id,
            outputs.c.segment,
            outputs.c.user_action,
            labels.c.source,
            labels.c.verdict,
        )
        .outerjoin(
            labels,
            and_(
                labels.c.feature == outputs.c.feature,
                labels.c.output_id == outputs.c.output_id,
                labels.c.source.like(f"{JUDGE_PREFIX}%"),
            ),
        )
        .where(outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
        .order_by(outputs.c.output_id)
        .execution_options(yield_per=chunk)
    )
    current: JudgedOutput | None = None
    for output_id, segment, action, source, verdict in conn.execute(query):
        if current is None or current.output_id != output_id:
            if current is not None:
                yield current
            current = JudgedOutput(output_id, segment or {}, action, {})
        if source is not None:
            current.verdicts[source.removeprefix(JUDGE_PREFIX)] = verdict
    if current is not None:
        yield current


def window_has_judge_labels(conn: Connection, feature: str, start: datetime, end: datetime) -> bool:
    """Whether any output logged in [start, end) has a judge's label."""
    query = (
        select(labels.c.pk)
        .join(outputs, and_(outputs.c.feature == labels.c.feature, outputs.c.output_id == labels.c.output_id))
        .where(
            labels.c.feature == feature,
            labels.c.source.like(f"{JUDGE_PREFIX}%"),
            outputs.c.ts >= start,
            outputs.c.ts < end,
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None
