"""Phase one of a big window's draw, pushed down to the database: flat in the window's size.

Below `BIG_WINDOW` unreviewed outputs the cycle reads every candidate and draws an exact
stratified sample (`monitor.decide.sampling.draw`). Above it, reading the window into Python (or
``ORDER BY random()``, which sorts the whole window) grows with the window, and PostgreSQL's
``TABLESAMPLE`` samples the whole table's pages before the window's ``WHERE``; so the draw
is done in two phases instead (double sampling for stratification):

1. Phase one, here (`random_unreviewed`): a simple random sample without replacement of ``m``
   unreviewed outputs of the window (``m = monitor.decide.sampling.phase_one_size(n)``). Random
   pks are drawn inside the pk range of the window (outputs are stored roughly in time order:
   the range starts at the smallest pk among the window's first `RANGE_SLACK` outputs by time
   and ends at the table's largest pk), each pk at most once; a pk is rejected when it does not
   exist, is not in the window, belongs to another feature or was sampled before. Every
   eligible output in the range is equally likely at every try, so the accepted ones are a
   simple random sample; it costs ``m / acceptance rate`` primary-key lookups, whatever the
   window's size.
2. Phase two (`monitor.decide.sampling.draw_from_phase_one`): the usual stratified draw, its
   allocation, minimum per stratum and low-confidence boost, over the phase-one outputs,
   stratified by what they are; inclusion probabilities ``(m / N) * (n_h / m_h)``.

``N``, the window's unreviewed outputs, is not counted (an exact count reads the whole window's
index: 0.7 s in SQLite and 1.0-1.3 s in PostgreSQL at 10,000,000 rows): it is estimated as the
pk range's size times the share of tried pks that were eligible (relative standard error
``sqrt((1 - p) / (p L))`` for ``L`` tries at acceptance rate ``p``: about 1% for a 50-output
draw); it is exact when every pk of the range was tried, or when the caller passes the count.
No GROUP BY over the segment JSON is needed; a stratum too small to appear among the ``m``
phase-one outputs gets no reviewed output that cycle (its expected size in phase one is
``m N_h / N``).

The cycle takes this path when more than `BIG_WINDOW` pks lie between the window's first and
last outputs by time (`window_span`: read off the indexes, no count). Limit: an output of the
window stored before the range's start (out of time order by more than `RANGE_SLACK` outputs)
cannot be drawn.

The active draw (`monitor.decide.sampling.ActiveDesign`) reads two more things here: the judges'
verdicts on the candidates at draw time (`window_judge_verdicts`, or `judge_verdicts_of` for a
phase-one sample) and the past cycles' drawn outputs with their human and judge labels
(`reviewed_between`), from which it learns where the judges and the humans disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Connection, and_, func, select

from monitor.store.tables import labels, outputs, samples

BIG_WINDOW = 200_000
RANGE_SLACK = 10_000
_BATCH_MAX = 5_000


@dataclass(frozen=True)
class UnreviewedOutput:
    """An output of the window never drawn for review, as the stratified draw reads it."""

    output_id: str
    segment: Mapping[str, str]
    confidence: float | None
    """The low-confidence signal's value, when it is a number."""


@dataclass(frozen=True)
class ReviewedOutput:
    """An output a past cycle drew, with every label it has now: what the active draw learns
    the judges' reliability from (`monitor.decide.sampling.residual_spreads`)."""

    output_id: str
    verdicts: Mapping[str, str]
    """source -> verdict."""
    low_confidence: bool
    """Among its window's least confident when drawn."""


@dataclass(frozen=True)
class RandomSample:
    """Phase one: a simple random sample of the window's unreviewed outputs."""

    outputs: list[UnreviewedOutput]
    """In the order drawn: m of them (fewer when the window has fewer)."""
    population: int
    """N: the window's unreviewed outputs (estimated unless counted or given)."""
    lookups: int
    """Primary keys tried."""


def count_unreviewed(conn: Connection, feature: str, start: datetime, end: datetime) -> int:
    """How many outputs of the window were never drawn for review (two index counts)."""
    in_window = (outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
    total = conn.execute(select(func.count()).where(*in_window)).scalar_one()
    sampled = conn.execute(
        select(func.count())
        .select_from(
            samples.join(
                outputs,
                and_(outputs.c.feature == samples.c.feature, outputs.c.output_id == samples.c.output_id),
            )
        )
        .where(samples.c.feature == feature, *in_window)
    ).scalar_one()
    return int(total) - int(sampled)


def window_span(conn: Connection, feature: str, start: datetime, end: datetime) -> int:
    """How many pks lie between the window's first and last outputs by time: an upper bound of
    its size (outputs stored in time order), read off the indexes without counting. Unlike the
    draw's range it ends at the window's own last outputs, so that an old window of a table
    that grew since (a backtest) is not taken for a big one."""
    in_window = (outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
    ends = []
    for order in (outputs.c.ts, outputs.c.ts.desc()):
        edge = select(outputs.c.pk).where(*in_window).order_by(order).limit(RANGE_SLACK).subquery()
        ends.append(
            conn.execute(select(func.min(edge.c.pk).label("low"), func.max(edge.c.pk).label("high"))).one()
        )
    first, last = ends
    if first.low is None:
        return 0
    return int(max(last.high, first.high)) - int(min(first.low, last.low)) + 1


def pk_range(conn: Connection, feature: str, start: datetime, end: datetime) -> tuple[int, int] | None:
    """Where the window's outputs are among the pks (see the module's note on its start)."""
    first = (
        select(outputs.c.pk)
        .where(outputs.c.feature == feature, outputs.c.ts >= start, outputs.c.ts < end)
        .order_by(outputs.c.ts)
        .limit(RANGE_SLACK)
        .subquery()
    )
    low = conn.execute(select(func.min(first.c.pk))).scalar()
    high = conn.execute(select(func.max(outputs.c.pk))).scalar()
    if low is None or high is None:
        return None
    return int(low), int(high)


def random_unreviewed(
    conn: Connection,
    feature: str,
    start: datetime,
    end: datetime,
    size: int,
    seed: int,
    low_confidence_signal: str = "confidence",
    population: int | None = None,
) -> RandomSample:
    """A simple random sample of `size` of the window's unreviewed outputs, without reading the
    window (phase one: see the module's note).

    `population` is N when known (an exact count); otherwise N is estimated from the pk draws.
    """
    bounds = pk_range(conn, feature, start, end)
    if size <= 0 or bounds is None or population == 0:
        return RandomSample([], 0, 0)
    low, high = bounds
    span = high - low + 1
    rng = np.random.default_rng(seed)
    tried: set[int] = set()
    accepted: list[UnreviewedOutput] = []
    lookups = eligible = 0
    rate = 1.0  # the same tries whether N is given or not
    while len(accepted) < size and len(tried) < span:
        needed = size - len(accepted)
        batch_size = int(min(_BATCH_MAX, span - len(tried), max(64, 1.3 * needed / max(rate, 1e-6))))
        batch = _fresh_pks(rng, low, span, batch_size, tried)
        lookups += len(batch)
        found = _eligible(conn, feature, start, end, batch, low_confidence_signal)
        hits = 0
        for pk in batch:  # in the order drawn, so that the first `size` accepted are a random sample
            candidate = found.get(pk)
            if candidate is None:
                continue
            hits += 1
            if len(accepted) < size:
                accepted.append(candidate)
        eligible += hits
        rate = max(hits / len(batch), 1.0 / span) if batch else rate
    if population is not None:
        total = population
    elif len(tried) >= span:  # every pk of the range was tried: the count is exact
        total = eligible
    else:  # the acceptance rate of the pks tried, over the whole range
        total = max(len(accepted), round(span * eligible / max(lookups, 1)))
    return RandomSample(accepted, total, lookups)


def _fresh_pks(rng: np.random.Generator, low: int, span: int, size: int, tried: set[int]) -> list[int]:
    """`size` pks of [low, low + span) never tried before, in random order (recorded as tried)."""
    fresh: list[int] = []
    while len(fresh) < size and len(tried) < span:
        for value in rng.integers(low, low + span, size=2 * (size - len(fresh))):
            pk = int(value)
            if pk not in tried:
                tried.add(pk)
                fresh.append(pk)
                if len(fresh) == size:
                    break
    return fresh


def _eligible(
    conn: Connection,
    feature: str,
    start: datetime,
    end: datetime,
    pks: Sequence[int],
    signal: str,
) -> dict[int, UnreviewedOutput]:
    """The tried pks that are unreviewed outputs of the window. Looked up by pk alone (a
    planner shown the window's conditions may prefer scanning the window), filtered here."""
    if not pks:
        return {}
    query = select(
        outputs.c.pk,
        outputs.c.feature,
        outputs.c.ts,
        outputs.c.output_id,
        outputs.c.segment,
        outputs.c.signals,
    ).where(outputs.c.pk.in_(list(pks)))
    found: dict[int, UnreviewedOutput] = {}
    for row in conn.execute(query):
        if row.feature != feature or not start <= row.ts < end:
            continue
        value = (row.signals or {}).get(signal)
        confidence = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        found[int(row.pk)] = UnreviewedOutput(row.output_id, row.segment or {}, confidence)
    if found:
        ids = [c.output_id for c in found.values()]
        reviewed = set(
            conn.execute(
                select(samples.c.output_id).where(samples.c.feature == feature, samples.c.output_id.in_(ids))
            ).scalars()
        )
        found = {pk: c for pk, c in found.items() if c.output_id not in reviewed}
    return found


def window_judge_verdicts(
    conn: Connection, feature: str, start: datetime, end: datetime
) -> dict[str, tuple[str, ...]]:
    """Per output of the window with a judge's label now, its judges' verdicts (by source name)."""
    query = (
        select(labels.c.output_id, labels.c.source, labels.c.verdict)
        .join(outputs, and_(outputs.c.feature == labels.c.feature, outputs.c.output_id == labels.c.output_id))
        .where(
            outputs.c.feature == feature,
            outputs.c.ts >= start,
            outputs.c.ts < end,
            labels.c.source.like("judge:%"),
        )
    )
    return _by_output(conn.execute(query))


def judge_verdicts_of(
    conn: Connection, feature: str, output_ids: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The judges' verdicts on these outputs (those with none are left out)."""
    rows: list[tuple[str, str, str]] = []
    for at in range(0, len(output_ids), _BATCH_MAX):
        chunk = list(output_ids[at : at + _BATCH_MAX])
        query = select(labels.c.output_id, labels.c.source, labels.c.verdict).where(
            labels.c.feature == feature, labels.c.output_id.in_(chunk), labels.c.source.like("judge:%")
        )
        rows.extend((output_id, source, verdict) for output_id, source, verdict in conn.execute(query))
    return _by_output(rows)


def reviewed_between(
    conn: Connection, feature: str, since: datetime, until: datetime
) -> list[ReviewedOutput]:
    """The outputs drawn by the feature's cycles scheduled in [since, until), each with all its
    labels (human and judge), in the order drawn."""
    drawn = (samples.c.feature == feature, samples.c.cycle_at >= since, samples.c.cycle_at < until)
    query = select(samples.c.output_id, samples.c.low_confidence).where(*drawn).order_by(samples.c.pk)
    found = [(output_id, bool(low)) for output_id, low in conn.execute(query)]
    verdicts: dict[str, dict[str, str]] = {}
    label_query = (
        select(labels.c.output_id, labels.c.source, labels.c.verdict)
        .join(samples, and_(samples.c.feature == labels.c.feature, samples.c.output_id == labels.c.output_id))
        .where(*drawn)
    )
    for output_id, source, verdict in conn.execute(label_query):
        verdicts.setdefault(output_id, {})[source] = verdict
    return [ReviewedOutput(output_id, verdicts.get(output_id, {}), low) for output_id, low in found]


def _by_output(rows: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, ...]]:
    by_source: dict[str, dict[str, str]] = {}
    for output_id, source, verdict in rows:
        by_source.setdefault(output_id, {})[source] = verdict
    return {output_id: tuple(v for _, v in sorted(found.items())) for output_id, found in by_source.items()}
