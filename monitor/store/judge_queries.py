"""What the judges read and write: the drawn outputs' contents, and every judge call's record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from monitor.store.tables import judge_runs, outputs

CHUNK = 500


def outputs_to_judge(conn: Connection, feature: str, output_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored outputs with these ids: input, output, segment, signals and versions."""
    found: dict[str, dict[str, Any]] = {}
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
        for row in conn.execute(query).mappings():
            found[row["output_id"]] = dict(row)
    return found


def judge_runs_of(conn: Connection, feature: str, cycle_at: datetime) -> list[dict[str, Any]]:
    """Every judge call made for the cycle, oldest first."""
    query = (
        select(judge_runs)
        .where(judge_runs.c.feature == feature, judge_runs.c.cycle_at == cycle_at)
        .order_by(judge_runs.c.pk)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def add_judge_runs(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(judge_runs), list(rows))
