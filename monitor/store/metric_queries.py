"""What `/metrics` reads at scrape time: every feature's latest persisted results, in a few queries.

`MetricsReader.read(conn, now)` runs a bounded number of statements (at most `MAX_STATEMENTS`)
however many features, cycles or labels the store holds: each query covers all features at
once, so a scrape never turns into one query per feature, and none of them grows with history:

- the cycles are read from the index `ix_cycles_metrics` alone (one aggregate per feature);
  a cycle's stored results (JSON, kilobytes) are fetched only when that feature's latest cycle
  changed (ran, restated) since the previous scrape, and the trigger states with them;
- labels and judge runs, which only grow, are counted incrementally (`RunningTotals`): each
  scrape counts the rows after the last counted key, through the primary key;
- notifications and digests not delivered (waiting or given up): one union of two counts over
  the few rows in those states.

Nothing is recomputed: the numbers are those the cycles stored (`cycles.result`), the running
totals of the `features` table, and counts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, case, exists, func, literal, or_, select, tuple_, union_all
from sqlalchemy.sql.elements import ColumnElement

from monitor.store.tables import (
    baselines,
    cycles,
    digest_deliveries,
    features,
    judge_runs,
    labels,
    mode_overrides,
    notification_deliveries,
    review_flags,
    samples,
    trigger_states,
)

__all__ = [
    "MAX_STATEMENTS",
    "UNFINISHED_AFTER",
    "BaselineRow",
    "CycleRow",
    "CycleSummary",
    "FeatureRow",
    "JudgeTotals",
    "MetricsData",
    "MetricsReader",
    "ReviewRow",
    "RunningTotals",
    "TriggerRow",
    "undelivered",
]

MAX_STATEMENTS = 11
"""The most SQL statements one `MetricsReader.read` runs, whatever the store holds."""

UNFINISHED_AFTER = timedelta(hours=1)
"""A cycle still `running` this long after it started has failed or was interrupted."""

_NO_LIMIT = 2**62


@dataclass(frozen=True)
class FeatureRow:
    name: str
    mode: str
    mode_reason: str
    outputs_total: int
    last_output_ts: datetime | None
    last_ingest_at: datetime | None
    mode_by_override: bool = False


@dataclass(frozen=True)
class CycleSummary:
    """A feature's cycles in one line of the index: counts, timing, and which ones are latest."""

    done: int
    running: int
    failed: int
    """Still `running` longer than `UNFINISHED_AFTER` after they started."""
    duration_sum: float
    duration_count: int
    latest_at: datetime | None
    """The latest finished cycle."""
    measured_at: datetime | None
    """The latest finished cycle with a pass rate (labels can arrive after a cycle ran)."""
    sampled_at: datetime | None
    """The latest cycle that drew a sample: its sample is the review queue."""
    restatements: int
    last_finished_at: datetime | None
    last_restated_at: datetime | None

    @property
    def version(self) -> tuple[Any, ...]:
        """Changes whenever a cycle of the feature finishes or is restated."""
        return (
            self.latest_at,
            self.measured_at,
            self.done,
            self.restatements,
            self.last_finished_at,
            self.last_restated_at,
        )


@dataclass(frozen=True)
class CycleRow:
    """A finished cycle: its counts, timing and stored results."""

    at: datetime
    window_start: datetime
    window_end: datetime
    outputs: int
    sampled: int
    labelled: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    finished_at: datetime | None
    duration_seconds: float | None
    result: Mapping[str, Any]


@dataclass(frozen=True)
class BaselineRow:
    version: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    labelled: int


@dataclass(frozen=True)
class TriggerRow:
    trigger: str
    scope: str
    state: str
    since: datetime


@dataclass(frozen=True)
class ReviewRow:
    """The review queue: the latest cycle's sample, less what humans labelled or somebody flagged."""

    cycle_at: datetime
    drawn: int
    reviewed: int
    flagged: int
    review_seconds: float = 0.0
    """the reviewers' time on the sample's human labels (`labels.review_seconds`)"""

    @property
    def backlog(self) -> int:
        return max(0, self.drawn - self.reviewed - self.flagged)


@dataclass(frozen=True)
class JudgeTotals:
    calls: int
    errors: int
    cost_usd: float


@dataclass
class MetricsData:
    """Everything `/metrics` states, per feature name."""

    features: dict[str, FeatureRow] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    """feature -> source_kind -> labels stored"""
    cycles: dict[str, CycleSummary] = field(default_factory=dict)
    latest: dict[str, CycleRow] = field(default_factory=dict)
    measured: dict[str, CycleRow] = field(default_factory=dict)
    baselines: dict[str, BaselineRow] = field(default_factory=dict)
    proposals: dict[str, int] = field(default_factory=dict)
    triggers: dict[str, list[TriggerRow]] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    """feature -> mode of the override in force"""
    review: dict[str, ReviewRow] = field(default_factory=dict)
    open_flags: dict[str, int] = field(default_factory=dict)
    judges: dict[str, dict[str, JudgeTotals]] = field(default_factory=dict)
    """feature -> judge -> calls, errors and cost of every call recorded"""
    deliveries: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(feature, webhook or digest, retrying or failed) -> deliveries in that state"""
    results_version: tuple[Any, ...] = ()
    """Changes whenever `latest`, `measured`, `triggers`, `baselines` or `proposals` change."""


class RunningTotals:
    """Per-group row counts and sums of a table that only grows, read incrementally by primary key.

    The first read counts the whole table; later reads count only the rows after the last key
    counted. SQLite commits one writer at a time, so its rows become visible in key order and
    the tail is exact. PostgreSQL hands out keys before commit, so a key below one already seen
    may still appear: there the tail is recounted until it is `lag` seconds old, and the whole
    table every `recount` seconds (a row committed later than that is counted at the next full
    recount). The totals never go down.
    """

    def __init__(
        self,
        table: Table,
        groups: Sequence[ColumnElement[Any]],
        aggregates: Sequence[ColumnElement[Any]],
        *,
        lag: float = 0.0,
        recount: float | None = None,
    ) -> None:
        self.table = table
        self.groups = list(groups)
        self.aggregates = list(aggregates)
        self.lag = lag
        self.recount = recount
        self._settled: dict[tuple[Any, ...], list[float]] | None = None
        self._key = 0
        self._counted_at = 0.0
        self._seen: deque[tuple[float, int]] = deque()

    def read(self, conn: Connection, moment: float | None = None) -> dict[tuple[Any, ...], list[float]]:
        moment = time.monotonic() if moment is None else moment
        full = self._settled is None or (
            self.recount is not None and moment - self._counted_at >= self.recount
        )
        after, cut = (0, _NO_LIMIT) if full else (self._key, self._cut(moment))
        pk = self.table.c.pk
        settles = case((pk <= cut, 1), else_=0).label("settles")
        query = (
            select(*self.groups, settles, *self.aggregates, func.max(pk))
            .where(pk > after)
            .group_by(*self.groups, settles)
        )
        width = len(self.groups)
        settled: dict[tuple[Any, ...], list[float]] = {} if full else (self._settled or {})
        tail: dict[tuple[Any, ...], list[float]] = {}
        top = after
        for row in conn.execute(query):
            group = tuple(row[:width])
            values = [float(v or 0) for v in row[width + 1 : -1]]
            top = max(top, int(row[-1]))
            target = settled if row[width] else tail
            current = target.setdefault(group, [0.0] * len(values))
            for i, value in enumerate(values):
                current[i] += value
        if full:
            self._counted_at = moment
            self._seen.clear()
            self._key = top
        else:
            self._key = max(self._key, min(cut, top))
            self._seen.append((moment, top))
        self._settled = settled
        merged = {group: list(values) for group, values in settled.items()}
        for group, values in tail.items():
            current = merged.setdefault(group, [0.0] * len(values))
            for i, value in enumerate(values):
                current[i] += value
        return merged

    def _cut(self, moment: float) -> int:
        """The highest key seen at least `lag` seconds ago: rows up to it count as settled."""
        if self.lag <= 0:
            return _NO_LIMIT
        cut = self._key
        while self._seen and moment - self._seen[0][0] >= self.lag:
            cut = max(cut, self._seen.popleft()[1])
        return cut


class MetricsReader:
    """Reads `MetricsData`; keeps the latest cycles' results and running totals between scrapes."""

    def __init__(self, dialect: str) -> None:
        lag, recount = (0.0, None) if dialect == "sqlite" else (600.0, 3600.0)
        self._labels = RunningTotals(
            labels, [labels.c.feature, labels.c.source_kind], [func.count()], lag=lag, recount=recount
        )
        self._judges = RunningTotals(
            judge_runs,
            [judge_runs.c.feature, judge_runs.c.judge],
            [func.count(), func.count(judge_runs.c.error), func.sum(judge_runs.c.cost_usd)],
            lag=lag,
            recount=recount,
        )
        self._versions: dict[str, tuple[Any, ...]] = {}
        self._latest: dict[str, CycleRow] = {}
        self._measured: dict[str, CycleRow] = {}
        self._triggers: dict[str, list[TriggerRow]] = {}
        self._review_keys: dict[str, tuple[Any, ...]] = {}
        self._review: dict[str, ReviewRow] = {}

    def read(self, conn: Connection, now: datetime) -> MetricsData:
        data = MetricsData()
        data.features = _features(conn)
        for (feature, kind), (count,) in self._labels.read(conn).items():
            data.labels.setdefault(feature, {})[kind] = int(count)
        for (feature, judge), (calls, errors, cost) in self._judges.read(conn).items():
            data.judges.setdefault(feature, {})[judge] = JudgeTotals(int(calls), int(errors), cost)
        data.cycles = _cycle_summaries(conn, now)
        self._refresh_results(conn, data.cycles)
        data.latest, data.measured, data.triggers = dict(self._latest), dict(self._measured), self._triggers
        data.baselines, data.proposals = _baselines(conn)
        data.overrides = _overrides(conn, now)
        data.open_flags = _flags(conn)
        data.deliveries = undelivered(conn)
        data.review = self._refresh_review(conn, data)
        data.results_version = (
            tuple(sorted(self._versions.items())),
            tuple(sorted(data.baselines.items())),
            tuple(sorted(data.proposals.items())),
        )
        return data

    def _refresh_review(self, conn: Connection, data: MetricsData) -> dict[str, ReviewRow]:
        """The review queues, counted again only for features whose sample, human labels or open
        flags changed since the previous scrape."""
        keys = {
            name: (
                summary.sampled_at,
                data.labels.get(name, {}).get("human", 0),
                data.open_flags.get(name, 0),
            )
            for name, summary in data.cycles.items()
            if summary.sampled_at is not None
        }
        changed = [name for name, key in keys.items() if self._review_keys.get(name) != key]
        for name in set(self._review) - set(keys):
            del self._review[name]
        if changed:
            pairs = [(name, at) for name in changed if (at := data.cycles[name].sampled_at) is not None]
            fresh = _review(conn, pairs)
            for name in changed:
                row = fresh.get(name)
                if row is None:
                    self._review.pop(name, None)
                else:
                    self._review[name] = row
        self._review_keys = keys
        return dict(self._review)

    def _refresh_results(self, conn: Connection, summaries: Mapping[str, CycleSummary]) -> None:
        """Fetch the latest cycles' results of the features whose cycles changed, and then the
        trigger states (a cycle writes them together with its results)."""
        versions = {name: summary.version for name, summary in summaries.items()}
        changed = [name for name, version in versions.items() if self._versions.get(name) != version]
        gone = set(self._versions) - set(versions)
        if not changed and not gone:
            return
        for name in gone:
            self._latest.pop(name, None)
            self._measured.pop(name, None)
        wanted = {
            (name, at)
            for name in changed
            for at in (summaries[name].latest_at, summaries[name].measured_at)
            if at is not None
        }
        rows = _cycle_rows(conn, sorted(wanted)) if wanted else {}
        for name in changed:
            summary = summaries[name]
            latest = rows.get((name, summary.latest_at)) if summary.latest_at else None
            measured = rows.get((name, summary.measured_at)) if summary.measured_at else None
            for cache, row in ((self._latest, latest), (self._measured, measured)):
                if row is None:
                    cache.pop(name, None)
                else:
                    cache[name] = row
        self._triggers = _triggers(conn)
        self._versions = versions


def _features(conn: Connection) -> dict[str, FeatureRow]:
    query = select(
        features.c.name,
        features.c.mode,
        features.c.mode_reason,
        features.c.outputs_total,
        features.c.last_output_ts,
        features.c.last_ingest_at,
        features.c.mode_by_override,
    )
    return {
        row[0]: FeatureRow(row[0], row[1], row[2] or "", int(row[3] or 0), row[4], row[5], bool(row[6]))
        for row in conn.execute(query)
    }


def _cycle_summaries(conn: Connection, now: datetime) -> dict[str, CycleSummary]:
    """One aggregate per feature over `ix_cycles_metrics` (no cycle's results are read)."""
    c = cycles.c
    done = c.status == "done"
    running = c.status == "running"
    stuck = and_(running, c.started_at < now - UNFINISHED_AFTER)
    query = select(
        c.feature,
        func.sum(case((done, 1), else_=0)),
        func.sum(case((running, 1), else_=0)),
        func.sum(case((stuck, 1), else_=0)),
        func.sum(case((done, c.duration_seconds), else_=None)),
        func.count(case((done, c.duration_seconds), else_=None)),
        func.max(case((done, c.at), else_=None)),
        func.max(case((and_(done, c.pass_rate.is_not(None)), c.at), else_=None)),
        func.max(case((c.sampled > 0, c.at), else_=None)),
        func.sum(c.restatements),
        func.max(c.finished_at),
        func.max(c.restated_at),
    ).group_by(c.feature)
    result = {}
    for row in conn.execute(query):
        result[row[0]] = CycleSummary(
            done=int(row[1] or 0),
            running=int(row[2] or 0) - int(row[3] or 0),
            failed=int(row[3] or 0),
            duration_sum=float(row[4] or 0.0),
            duration_count=int(row[5] or 0),
            latest_at=_aware(row[6]),
            measured_at=_aware(row[7]),
            sampled_at=_aware(row[8]),
            restatements=int(row[9] or 0),
            last_finished_at=_aware(row[10]),
            last_restated_at=_aware(row[11]),
        )
    return result


def _aware(value: Any) -> datetime | None:
    """An aggregate's time as the store's aware UTC datetime (SQLite returns text from max())."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cycle_rows(
    conn: Connection, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], CycleRow]:
    query = select(
        cycles.c.feature,
        cycles.c.at,
        cycles.c.window_start,
        cycles.c.window_end,
        cycles.c.outputs,
        cycles.c.sampled,
        cycles.c.labelled,
        cycles.c.pass_rate,
        cycles.c.pass_rate_low,
        cycles.c.pass_rate_high,
        cycles.c.finished_at,
        cycles.c.duration_seconds,
        cycles.c.result,
    ).where(tuple_(cycles.c.feature, cycles.c.at).in_(list(keys)))
    rows = {}
    for row in conn.execute(query):
        rows[(row[0], row[1])] = CycleRow(
            at=row[1],
            window_start=row[2],
            window_end=row[3],
            outputs=int(row[4] or 0),
            sampled=int(row[5] or 0),
            labelled=int(row[6] or 0),
            pass_rate=row[7],
            pass_rate_low=row[8],
            pass_rate_high=row[9],
            finished_at=row[10],
            duration_seconds=row[11],
            result=row[12] if isinstance(row[12], Mapping) else {},
        )
    return rows


def _baselines(conn: Connection) -> tuple[dict[str, BaselineRow], dict[str, int]]:
    query = (
        select(
            baselines.c.feature,
            baselines.c.status,
            baselines.c.version,
            baselines.c.pass_rate,
            baselines.c.pass_rate_low,
            baselines.c.pass_rate_high,
            baselines.c.labelled,
        )
        .where(baselines.c.status.in_(("active", "proposed")))
        .order_by(baselines.c.feature, baselines.c.version)
    )
    active: dict[str, BaselineRow] = {}
    proposals: dict[str, int] = {}
    for feature, status, version, rate, low, high, labelled in conn.execute(query):
        if status == "active":  # the newest active version wins
            active[feature] = BaselineRow(int(version), rate, low, high, int(labelled or 0))
        else:
            proposals[feature] = proposals.get(feature, 0) + 1
    return active, proposals


def _triggers(conn: Connection) -> dict[str, list[TriggerRow]]:
    query = select(
        trigger_states.c.feature,
        trigger_states.c.trigger,
        trigger_states.c.scope,
        trigger_states.c.state,
        trigger_states.c.since,
    ).order_by(trigger_states.c.feature, trigger_states.c.trigger, trigger_states.c.scope)
    result: dict[str, list[TriggerRow]] = {}
    for feature, trigger, scope, state, since in conn.execute(query):
        result.setdefault(feature, []).append(TriggerRow(trigger, scope, state, since))
    return result


def _overrides(conn: Connection, now: datetime) -> dict[str, str]:
    """The override in force per feature: as `cycle_queries.active_override`, the latest one set
    (not cleared) decides, and only while its `until` has not passed."""
    query = (
        select(mode_overrides.c.feature, mode_overrides.c.mode, mode_overrides.c.until)
        .where(mode_overrides.c.cleared_at.is_(None), mode_overrides.c.set_at <= now)
        .order_by(mode_overrides.c.feature, mode_overrides.c.set_at.desc(), mode_overrides.c.pk.desc())
    )
    seen: set[str] = set()
    result = {}
    for feature, mode, until in conn.execute(query):
        if feature in seen:
            continue
        seen.add(feature)
        if until is None or until > now:
            result[feature] = mode
    return result


def _review(conn: Connection, keys: Sequence[tuple[str, datetime]]) -> dict[str, ReviewRow]:
    """For these (feature, cycle) pairs, the cycle's sample: drawn, labelled by a human, flagged."""
    human = exists().where(  # `source` (not source_kind) keeps this inside the labels' unique index
        labels.c.feature == samples.c.feature,
        labels.c.output_id == samples.c.output_id,
        func.substr(labels.c.source, 1, 6) == "human:",
    )
    flagged = exists().where(
        review_flags.c.feature == samples.c.feature,
        review_flags.c.output_id == samples.c.output_id,
        review_flags.c.resolved_at.is_(None),
    )
    timed = (
        select(func.coalesce(func.sum(labels.c.review_seconds), 0.0))
        .where(
            labels.c.feature == samples.c.feature,
            labels.c.output_id == samples.c.output_id,
            func.substr(labels.c.source, 1, 6) == "human:",
        )
        .scalar_subquery()
    )
    query = (
        select(
            samples.c.feature,
            samples.c.cycle_at,
            func.count(),
            func.sum(case((human, 1), else_=0)),
            func.sum(case((and_(flagged, ~human), 1), else_=0)),  # flags are rare: few second looks
            func.sum(timed),
        )
        .where(or_(*(and_(samples.c.feature == name, samples.c.cycle_at == at) for name, at in keys)))
        .group_by(samples.c.feature, samples.c.cycle_at)
    )
    return {
        feature: ReviewRow(
            _aware(cycle_at) or cycle_at,
            int(count),
            int(done or 0),
            int(flags or 0),
            float(seconds or 0.0),
        )
        for feature, cycle_at, count, done, flags, seconds in conn.execute(query)
    }


def undelivered(conn: Connection) -> dict[tuple[str, str, str], int]:
    """Notifications and digests not delivered: waiting for a later try, or given up for good."""
    states = {
        ("webhook", "waiting"): "retrying",
        ("webhook", "failed"): "failed",
        ("digest", "failed"): "retrying",
        ("digest", "given_up"): "failed",
    }
    counts = [
        select(table.c.feature, literal(kind), table.c.status, func.count())
        .where(table.c.status.in_([status for k, status in states if k == kind]))
        .group_by(table.c.feature, table.c.status)
        for kind, table in (("webhook", notification_deliveries), ("digest", digest_deliveries))
    ]
    return {
        (feature, kind, states[(kind, status)]): int(count)
        for feature, kind, status, count in conn.execute(union_all(*counts))
    }


def _flags(conn: Connection) -> dict[str, int]:
    query = (
        select(review_flags.c.feature, func.count(func.distinct(review_flags.c.output_id)))
        .where(review_flags.c.resolved_at.is_(None))
        .group_by(review_flags.c.feature)
    )
    return {feature: int(count) for feature, count in conn.execute(query)}
