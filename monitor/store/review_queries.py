"""Queries behind the human review page: the week's sample, its progress, flags and the labels given.

A cycle's sample is the review queue. An output leaves the queue once any human labels it, or
while it is flagged for the feature's owner (the owner labels it from the flagged list, which
resolves the flag). Judge verdicts are labels with a `judge:` source; their `reason` is the
judge's rationale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, insert, select, update

from monitor.records import LabelRecord
from monitor.store.tables import cycles, judge_runs, labels, outputs, review_flags, samples
from monitor.store.writes import WriteCounts, insert_labels

__all__ = [
    "CycleProgress",
    "Flag",
    "GivenLabel",
    "JudgeRun",
    "ReviewItem",
    "add_flag",
    "cycle_times",
    "flagged_items",
    "open_flag_counts",
    "open_flags",
    "progress",
    "queue",
    "record_review",
    "review_item",
]


@dataclass(frozen=True)
class CycleProgress:
    """How far the humans got through one cycle's sample."""

    feature: str
    cycle_at: datetime
    drawn: int
    reviewed: int
    """Drawn outputs with a label from at least one human."""
    flagged: int
    """Drawn outputs with an open flag and no human label yet."""

    @property
    def left(self) -> int:
        return self.drawn - self.reviewed - self.flagged


@dataclass(frozen=True)
class GivenLabel:
    """A verdict already given on an output: a judge's (with its rationale) or a human's."""

    source: str
    verdict: str
    score: float | None
    reason: str | None
    ts: datetime

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.source.split(":", 1)[-1]


@dataclass(frozen=True)
class JudgeRun:
    """A judge's latest call on an output: what it cost, or why it gave no verdict."""

    judge: str
    cost_usd: float
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True)
class ReviewItem:
    """One drawn output with everything a reviewer weighs."""

    feature: str
    output_id: str
    cycle_at: datetime
    ts: datetime
    input: Any
    output: Any
    model_version: str | None
    config_version: str | None
    segment: Mapping[str, str]
    signals: Mapping[str, float]
    user_action: str | None
    metadata: Mapping[str, Any] | None
    stratum: str
    low_confidence: bool
    labels: tuple[GivenLabel, ...] = ()
    runs: Mapping[str, JudgeRun] = field(default_factory=dict)
    """judge name -> its latest call on this output."""

    @property
    def judges(self) -> tuple[GivenLabel, ...]:
        return tuple(label for label in self.labels if label.kind == "judge")

    @property
    def judge_failures(self) -> tuple[JudgeRun, ...]:
        """Judges whose call failed and who gave no verdict."""
        judged = {label.name for label in self.judges}
        return tuple(run for run in self.runs.values() if run.error and run.judge not in judged)

    @property
    def humans(self) -> tuple[GivenLabel, ...]:
        return tuple(label for label in self.labels if label.kind == "human")


@dataclass(frozen=True)
class Flag:
    """An output a reviewer flagged for the feature's owner."""

    pk: int
    feature: str
    output_id: str
    reason: str
    flagged_by: str
    at: datetime


def _human_label_exists() -> Any:
    return exists().where(
        labels.c.feature == samples.c.feature,
        labels.c.output_id == samples.c.output_id,
        labels.c.source_kind == "human",
    )


def _open_flag_exists() -> Any:
    return exists().where(
        review_flags.c.feature == samples.c.feature,
        review_flags.c.output_id == samples.c.output_id,
        review_flags.c.resolved_at.is_(None),
    )


def cycle_times(conn: Connection, feature: str, limit: int | None = None) -> list[datetime]:
    """The times of the feature's cycles that drew a sample, newest first."""
    query = (
        select(cycles.c.at)
        .where(cycles.c.feature == feature, cycles.c.sampled > 0)
        .order_by(cycles.c.at.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [row[0] for row in conn.execute(query)]


def progress(conn: Connection, feature: str, cycle_ats: Sequence[datetime]) -> list[CycleProgress]:
    """Progress through the samples of the given cycles of a feature, in the order given."""
    if not cycle_ats:
        return []
    human = _human_label_exists()
    flagged = and_(~human, _open_flag_exists())
    query = (
        select(
            samples.c.cycle_at,
            func.count(),
            func.coalesce(func.sum(case((human, 1), else_=0)), 0),
            func.coalesce(func.sum(case((flagged, 1), else_=0)), 0),
        )
        .where(samples.c.feature == feature, samples.c.cycle_at.in_(list(cycle_ats)))
        .group_by(samples.c.cycle_at)
    )
    found = {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in conn.execute(query)}
    return [CycleProgress(feature, at, *found.get(at, (0, 0, 0))) for at in cycle_ats]


def queue(conn: Connection, feature: str, cycle_at: datetime) -> list[ReviewItem]:
    """The cycle's drawn outputs that no human labelled and nobody flagged, in the order drawn."""
    return _items(
        conn, feature, [samples.c.cycle_at == cycle_at, ~_human_label_exists(), ~_open_flag_exists()]
    )


def review_item(conn: Connection, feature: str, output_id: str) -> ReviewItem | None:
    """One drawn output (by any cycle), with every label it has; None when it was never drawn."""
    found = _items(conn, feature, [samples.c.output_id == output_id])
    return found[0] if found else None


def _items(conn: Connection, feature: str, where: Iterable[Any]) -> list[ReviewItem]:
    query = (
        select(
            samples.c.output_id,
            samples.c.cycle_at,
            samples.c.stratum,
            samples.c.low_confidence,
            outputs.c.ts,
            outputs.c.input,
            outputs.c.output,
            outputs.c.model_version,
            outputs.c.config_version,
            outputs.c.segment,
            outputs.c.signals,
            outputs.c.user_action,
            outputs.c.metadata,
        )
        .join(
            outputs, and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id)
        )
        .where(samples.c.feature == feature, *where)
        .order_by(samples.c.pk)
    )
    rows = list(conn.execute(query).mappings())
    ids = [row["output_id"] for row in rows]
    given = _labels_of(conn, feature, ids)
    runs = _runs_of(conn, feature, ids)
    return [
        ReviewItem(
            feature=feature,
            output_id=row["output_id"],
            cycle_at=row["cycle_at"],
            ts=row["ts"],
            input=row["input"],
            output=row["output"],
            model_version=row["model_version"],
            config_version=row["config_version"],
            segment=row["segment"] or {},
            signals=row["signals"] or {},
            user_action=row["user_action"],
            metadata=row["metadata"],
            stratum=row["stratum"],
            low_confidence=bool(row["low_confidence"]),
            labels=tuple(given.get(row["output_id"], ())),
            runs=runs.get(row["output_id"], {}),
        )
        for row in rows
    ]


_CHUNK = 500


def _labels_of(conn: Connection, feature: str, output_ids: Sequence[str]) -> dict[str, list[GivenLabel]]:
    found: dict[str, list[GivenLabel]] = {}
    for start in range(0, len(output_ids), _CHUNK):
        chunk = list(output_ids[start : start + _CHUNK])
        query = (
            select(
                labels.c.output_id,
                labels.c.source,
                labels.c.verdict,
                labels.c.score,
                labels.c.reason,
                labels.c.ts,
            )
            .where(labels.c.feature == feature, labels.c.output_id.in_(chunk))
            .order_by(labels.c.source)
        )
        for row in conn.execute(query):
            found.setdefault(row[0], []).append(GivenLabel(row[1], row[2], row[3], row[4], row[5]))
    return found


def _runs_of(conn: Connection, feature: str, output_ids: Sequence[str]) -> dict[str, dict[str, JudgeRun]]:
    found: dict[str, dict[str, JudgeRun]] = {}
    for start in range(0, len(output_ids), _CHUNK):
        chunk = list(output_ids[start : start + _CHUNK])
        query = (
            select(
                judge_runs.c.output_id,
                judge_runs.c.judge,
                judge_runs.c.cost_usd,
                judge_runs.c.latency_ms,
                judge_runs.c.error,
            )
            .where(judge_runs.c.feature == feature, judge_runs.c.output_id.in_(chunk))
            .order_by(judge_runs.c.pk)
        )
        for row in conn.execute(query):  # in call order: the latest call of each judge wins
            found.setdefault(row[0], {})[row[1]] = JudgeRun(row[1], float(row[2] or 0.0), row[3], row[4])
    return found


def record_review(
    conn: Connection, label: LabelRecord, review_seconds: float | None, now: datetime
) -> WriteCounts:
    """Store a reviewer's label (replacing their earlier one), how long it took, and resolve the
    output's open flags: a human verdict is what a flag asked for. Runs in the caller's transaction."""
    counts = insert_labels(conn, [label], now)
    conn.execute(
        update(labels)
        .where(
            labels.c.feature == label.feature,
            labels.c.output_id == label.output_id,
            labels.c.source == label.source,
        )
        .values(review_seconds=review_seconds)
    )
    conn.execute(
        update(review_flags)
        .where(
            review_flags.c.feature == label.feature,
            review_flags.c.output_id == label.output_id,
            review_flags.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    return counts


def add_flag(conn: Connection, feature: str, output_id: str, reason: str, by: str, now: datetime) -> None:
    """Flag an output for the owner; the same person flagging it again updates their open flag."""
    result = conn.execute(
        update(review_flags)
        .where(
            review_flags.c.feature == feature,
            review_flags.c.output_id == output_id,
            review_flags.c.flagged_by == by,
            review_flags.c.resolved_at.is_(None),
        )
        .values(reason=reason, at=now)
    )
    if not result.rowcount:
        conn.execute(
            insert(review_flags).values(
                feature=feature, output_id=output_id, reason=reason, flagged_by=by, at=now
            )
        )


def open_flags(conn: Connection, feature: str) -> list[Flag]:
    """The feature's unresolved flags, oldest first."""
    query = (
        select(review_flags)
        .where(review_flags.c.feature == feature, review_flags.c.resolved_at.is_(None))
        .order_by(review_flags.c.at, review_flags.c.pk)
    )
    return [
        Flag(row["pk"], row["feature"], row["output_id"], row["reason"], row["flagged_by"], row["at"])
        for row in conn.execute(query).mappings()
    ]


def flagged_items(conn: Connection, feature: str) -> list[tuple[ReviewItem, list[Flag]]]:
    """Each flagged output (oldest flag first) with its open flags."""
    by_output: dict[str, list[Flag]] = {}
    for flag in open_flags(conn, feature):
        by_output.setdefault(flag.output_id, []).append(flag)
    result = []
    for output_id, flags in by_output.items():
        item = review_item(conn, feature, output_id)
        if item is not None:
            result.append((item, flags))
    return result


def open_flag_counts(conn: Connection) -> dict[str, int]:
    """Per feature, how many outputs have an open flag."""
    query = (
        select(review_flags.c.feature, func.count(func.distinct(review_flags.c.output_id)))
        .where(review_flags.c.resolved_at.is_(None))
        .group_by(review_flags.c.feature)
    )
    return {row[0]: int(row[1]) for row in conn.execute(query)}
