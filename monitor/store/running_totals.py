"""Row counts and sums of a table that only grows, kept between reads and brought up to date
through the primary key: a scrape counts only the rows added since the previous one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, case, func, select
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["RunningTotals"]

_NO_LIMIT = 2**62


class _Seen(NamedTuple):
    """The highest key a read met, and when."""

    moment: float
    top: int


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
        self._seen: deque[_Seen] = deque()

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
        for row in conn.execute(query):  # the group's columns, then settles, the aggregates, max(pk)
            group = tuple(row[:width])
            row_settles, *sums, row_top = row[width:]
            values = [float(v or 0) for v in sums]
            top = max(top, int(row_top))
            target = settled if row_settles else tail
            current = target.setdefault(group, [0.0] * len(values))
            for i, value in enumerate(values):
                current[i] += value
        if full:
            self._counted_at = moment
            self._seen.clear()
            self._key = top
        else:
            self._key = max(self._key, min(cut, top))
            self._seen.append(_Seen(moment, top))
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
        while self._seen and moment - self._seen[0].moment >= self.lag:
            cut = max(cut, self._seen.popleft().top)
        return cut
