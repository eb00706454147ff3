"""What the weekly report reads beyond the cycles: the failed examples of a week's sample."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from monitor.store.tables import labels, outputs, samples

__all__ = ["FailedExample", "failed_human_labels"]


@dataclass(frozen=True)
class FailedExample:
    """A sampled output a human failed, with the reviewer's reason and what was shown."""

    output_id: str
    reason: str | None
    source: str
    input: Any
    output: Any
    segment: dict[str, str] | None
    signals: dict[str, Any] | None
    user_action: str | None


def failed_human_labels(conn: Connection, feature: str, cycle_at: datetime) -> list[FailedExample]:
    """The outputs of the cycle's sample that a human labelled `fail`."""
    rows = conn.execute(
        select(
            labels.c.output_id,
            labels.c.reason,
            labels.c.source,
            outputs.c.input,
            outputs.c.output,
            outputs.c.segment,
            outputs.c.signals,
            outputs.c.user_action,
        )
        .select_from(
            samples.join(
                labels,
                and_(labels.c.feature == samples.c.feature, labels.c.output_id == samples.c.output_id),
            ).join(
                outputs,
                and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id),
            )
        )
        .where(
            samples.c.feature == feature,
            samples.c.cycle_at == cycle_at,
            labels.c.source_kind == "human",
            labels.c.verdict == "fail",
        )
    )
    return [
        FailedExample(
            output_id=row.output_id,
            reason=row.reason,
            source=row.source,
            input=row.input,
            output=row.output,
            segment=row.segment,
            signals=row.signals,
            user_action=row.user_action,
        )
        for row in rows
    ]
