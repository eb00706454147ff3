"""Read-side queries that return plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from monitor.store.tables import features, labels


@dataclass(frozen=True)
class FeatureCounts:
    name: str
    mode: str
    mode_reason: str
    outputs: int
    first_output_ts: datetime | None
    last_output_ts: datetime | None
    human_labels: int
    judge_labels: int


def feature_counts(conn: Connection) -> list[FeatureCounts]:
    """Every known feature with its output and label counts."""
    label_counts: dict[tuple[str, str], int] = {
        (feature, source_kind): count
        for feature, source_kind, count in conn.execute(
            select(labels.c.feature, labels.c.source_kind, func.count()).group_by(
                labels.c.feature, labels.c.source_kind
            )
        )
    }
    rows = conn.execute(select(features).order_by(features.c.name)).mappings()
    return [
        FeatureCounts(
            name=row["name"],
            mode=row["mode"],
            mode_reason=row["mode_reason"],
            outputs=row["outputs_total"],
            first_output_ts=row["first_output_ts"],
            last_output_ts=row["last_output_ts"],
            human_labels=label_counts.get((row["name"], "human"), 0),
            judge_labels=label_counts.get((row["name"], "judge"), 0),
        )
        for row in rows
    ]
