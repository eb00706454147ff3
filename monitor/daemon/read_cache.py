"""Answers read from the store, reused for a moment so that hot polling does not queue on it.

The AI app polls its feature's mode (`GET /v1/features/{f}/status`, OFREP) many times a second
across its instances, and every poll carries a bearer token. Reading the store for each one
puts a worker-thread hop and several queries on the path of an answer that changes once a
week, behind whatever ingest batch holds the interpreter at that moment. So the daemon keeps
the last answer per key for `server.read_cache_seconds`:

- a fresh entry is answered on the event loop, without a thread or a query;
- past half its life, it is still answered while one background read replaces it, so steady
  polling never waits for the store;
- an expired (or missing) entry is read at once, and concurrent askers share that one read;
- a change made through this daemon (an override) replaces the entry at once; a change made
  elsewhere (a cycle, another replica, `aiqm token revoke`) shows within the lifetime.

Age is measured both on the monotonic clock and on the daemon's clock (the one `now` comes
from), so an override's `until` passing, or a test's clock moving on, also ends an entry.
`seconds = 0` turns the cache off: every ask reads the store.

The entries change on the event loop's thread, except by `forget`, which any thread may call (a
cycle run by the scheduler ends its feature's entry): it only removes keys, one atomic step each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import anyio.to_thread

__all__ = ["ReadCache"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    value: Any
    read_at: float  # monotonic seconds
    read_for: datetime  # the daemon's clock when it was read


class ReadCache:
    """Per-key answers from the store, reused for at most `seconds` (see the module's docstring)."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], datetime],
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._entries: dict[Hashable, _Entry] = {}
        self._reading: dict[Hashable, asyncio.Task[Any]] = {}

    def _age(self, entry: _Entry) -> float:
        """The entry's age in seconds: the larger of the two clocks' (a clock going back: expired)."""
        by_clock = (self._clock() - entry.read_for).total_seconds()
        if by_clock < 0:
            return float("inf")
        return max(self._monotonic() - entry.read_at, by_clock)

    async def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """The value for `key`: the kept one while fresh, else what `read()` (in a worker thread) gives."""
        entry = self._entries.get(key)
        if entry is not None:
            age = self._age(entry)
            if age < self.seconds:
                if age >= self.seconds / 2:
                    self._start(key, read)  # the next asker gets the new value; this one needn't wait
                return cast(T, entry.value)
        return await self.refresh(key, read)

    async def refresh(self, key: Hashable, read: Callable[[], T]) -> T:
        """Read `key` now (joining a read already under way) and keep the answer."""
        # Shielded: an asker that goes away (a client hanging up) does not cancel the others' read.
        return cast(T, await asyncio.shield(self._start(key, read)))

    def put(self, key: Hashable, value: Any) -> None:
        """Keep `value` for `key` as read now (a change this daemon made itself)."""
        self._reading.pop(key, None)  # a read under way began before the change: it must not win
        self._keep(key, _Entry(value, self._monotonic(), self._clock()))

    def forget(self, key: Hashable) -> None:
        """Drop `key`'s entry: the next ask reads the store."""
        self._reading.pop(key, None)
        self._entries.pop(key, None)

    def _start(self, key: Hashable, read: Callable[[], Any]) -> asyncio.Task[Any]:
        """The read of `key` under way, or a new one (one at a time per key)."""
        task = self._reading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(key, read))
            self._reading[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _read(self, key: Hashable, read: Callable[[], Any]) -> Any:
        read_at, read_for = self._monotonic(), self._clock()
        try:
            value = await anyio.to_thread.run_sync(read)
        except Exception:
            if self._reading.get(key) is asyncio.current_task():
                self._entries.pop(key, None)  # the next asker reads again and meets the error itself
            raise
        if self._reading.get(key) is asyncio.current_task():  # not overtaken by put() or forget()
            self._keep(key, _Entry(value, read_at, read_for))
        return value

    def _finished(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled() and task.exception() is not None:
            log.debug("reading %r failed: %s", key, type(task.exception()).__name__)

    def _keep(self, key: Hashable, entry: _Entry) -> None:
        if self.seconds <= 0:
            return
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:  # the oldest kept entry makes room
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry
