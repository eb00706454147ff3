"""The raw text of outputs: what retention and `privacy.unsampled_text` delete, and what pull
mode fills in for sampled outputs.

Deleting text sets an output's `input` and `output` to NULL and keeps everything else (lengths,
signals, segments, samples, labels), so aggregates and history stay intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, null, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from monitor.store.tables import outputs, samples

_TEXT_KEPT = or_(outputs.c.input.is_not(None), outputs.c.output.is_not(None))


class SampledOutputKey(NamedTuple):
    """A sampled output's place: its time and primary key."""

    ts: datetime
    pk: int


def text_older_than(conn: Connection, cutoff: datetime, limit: int) -> list[int]:
    """Up to `limit` pks of outputs before `cutoff` (by `ts`) that still keep raw text."""
    query = select(outputs.c.pk).where(outputs.c.ts < cutoff, _TEXT_KEPT).limit(limit)
    return list(conn.execute(query).scalars())


def delete_text(conn: Connection, pks: Sequence[int]) -> None:
    """Set the raw input and output of these outputs to NULL."""
    conn.execute(update(outputs).where(outputs.c.pk.in_(list(pks))).values(input=null(), output=null()))


def sampled_outputs_in_window(
    conn: Connection, feature: str, start: datetime, end: datetime
) -> list[SampledOutputKey]:
    """The outputs of `feature` in [start, end) that a cycle sampled, by time and then pk."""
    query = (
        select(outputs.c.ts, outputs.c.pk)
        .select_from(
            samples.join(
                outputs,
                and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id),
            )
        )
        .where(samples.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
    )
    return sorted(SampledOutputKey(row.ts, row.pk) for row in conn.execute(query))


def delete_text_except(
    conn: Connection, feature: str, start: datetime, end: datetime, keep: Sequence[int]
) -> int:
    """Set the raw input and output of `feature`'s outputs in [start, end) to NULL, except the
    outputs whose pks are in `keep`; how many changed. The sampled outputs are left out by
    primary key, not by an anti-join against `samples`, whose plan a stale estimate of the
    table's statistics can turn into a nested loop over every sample for every output."""
    result = conn.execute(
        update(outputs)
        .where(
            outputs.c.feature == feature,
            outputs.c.ts >= start,
            outputs.c.ts < end,
            _TEXT_KEPT,
            outputs.c.pk.not_in(list(keep)),
        )
        .values(input=null(), output=null())
    )
    return int(result.rowcount)


def without_text(
    conn: Connection, feature: str, output_ids: Sequence[str], kept_since: datetime | None
) -> list[str]:
    """Those of `output_ids` stored without a text they had (a length but no input, or no
    output), and, with `kept_since`, not older than it. `output_ids` is one chunk (an IN list)."""
    stripped: ColumnElement[bool] = or_(
        and_(outputs.c.input.is_(None), outputs.c.input_length.is_not(None)),
        and_(outputs.c.output.is_(None), outputs.c.output_length.is_not(None)),
    )
    if kept_since is not None:
        stripped = and_(stripped, outputs.c.ts >= kept_since)
    query = select(outputs.c.output_id).where(
        outputs.c.feature == feature, outputs.c.output_id.in_(list(output_ids)), stripped
    )
    return list(conn.execute(query).scalars())


def set_text(conn: Connection, feature: str, output_id: str, raw_input: Any, raw_output: Any) -> None:
    """Store the raw input and output of one output."""
    conn.execute(
        update(outputs)
        .where(outputs.c.feature == feature, outputs.c.output_id == output_id)
        .values(input=raw_input, output=raw_output)
    )
