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

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, literal, or_, select, tuple_, union_all

from monitor.store.metric_rows import (
    UNFINISHED_AFTER,
    BaselineRow,
    CycleRow,
    CycleSummary,
    FeatureRow,
    JudgeTotals,
    MetricsData,
    ReviewRow,
    TriggerRow,
)
from monitor.store.running_totals import RunningTotals
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
        row.name: FeatureRow(
            row.name,
            row.mode,
            row.mode_reason or "",
            int(row.outputs_total or 0),
            row.last_output_ts,
            row.last_ingest_at,
            bool(row.mode_by_override),
        )
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
        func.sum(case((done, 1), else_=0)).label("done"),
        func.sum(case((running, 1), else_=0)).label("running"),
        func.sum(case((stuck, 1), else_=0)).label("stuck"),
        func.sum(case((done, c.duration_seconds), else_=None)).label("duration_sum"),
        func.count(case((done, c.duration_seconds), else_=None)).label("duration_count"),
        func.max(case((done, c.at), else_=None)).label("latest_at"),
        func.max(case((and_(done, c.pass_rate.is_not(None)), c.at), else_=None)).label("measured_at"),
        func.max(case((c.sampled > 0, c.at), else_=None)).label("sampled_at"),
        func.sum(c.restatements).label("restatements"),
        func.max(c.finished_at).label("last_finished_at"),
        func.max(c.restated_at).label("last_restated_at"),
    ).group_by(c.feature)
    result = {}
    for row in conn.execute(query):
        result[row.feature] = CycleSummary(
            done=int(row.done or 0),
            running=int(row.running or 0) - int(row.stuck or 0),
            failed=int(row.stuck or 0),
            duration_sum=float(row.duration_sum or 0.0),
            duration_count=int(row.duration_count or 0),
            latest_at=_aware(row.latest_at),
            measured_at=_aware(row.measured_at),
            sampled_at=_aware(row.sampled_at),
            restatements=int(row.restatements or 0),
            last_finished_at=_aware(row.last_finished_at),
            last_restated_at=_aware(row.last_restated_at),
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
        rows[(row.feature, row.at)] = CycleRow(
            at=row.at,
            window_start=row.window_start,
            window_end=row.window_end,
            outputs=int(row.outputs or 0),
            sampled=int(row.sampled or 0),
            labelled=int(row.labelled or 0),
            pass_rate=row.pass_rate,
            pass_rate_low=row.pass_rate_low,
            pass_rate_high=row.pass_rate_high,
            finished_at=row.finished_at,
            duration_seconds=row.duration_seconds,
            result=row.result if isinstance(row.result, Mapping) else {},
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
