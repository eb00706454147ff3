"""Which replica runs the scheduled cycles: leader election over one PostgreSQL store.

Several `aiqm serve` processes may share one PostgreSQL store: all of them take ingest and serve
the API, but only the leader runs the scheduler (APScheduler's jobs live in the store, so two
running schedulers would both fire them). The leader holds a session-level
`pg_try_advisory_lock(LEADER_LOCK)` on a connection of its own, kept outside the pool; the other
replicas try again every `retry_seconds`. When the leader dies its connection drops, PostgreSQL
releases the lock, and the next try of another replica takes it over (server-side TCP keepalives
on that connection bound how long a vanished host keeps it). A leader checks its connection at
each tick, and again just before each scheduled cycle (`confirm`): once it is gone, the lock may
be someone else's, so it stops its scheduler and competes again. So two replicas never both
start a cycle, even when PostgreSQL dropped a leader's session (a network cut) seconds before
the leader noticed; and a cycle is idempotent per (feature, scheduled time) besides.

A SQLite store belongs to one process: its daemon is always the leader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from monitor.store import advisory_locks

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["LEADER_LOCK", "LeaderCollector", "Leadership"]

log = logging.getLogger(__name__)

LEADER_LOCK = 715517002  # the session-level advisory lock key of the scheduler's leader
RETRY_SECONDS = 5.0


class Leadership:
    """Calls `on_gain` when this process becomes the leader and `on_lose` when it stops being one."""

    def __init__(
        self,
        engine: Engine,
        on_gain: Callable[[], None],
        on_lose: Callable[[], None],
        *,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self.on_gain = on_gain
        self.on_lose = on_lose
        self.retry_seconds = retry_seconds
        self.elected = engine.dialect.name != "postgresql"
        self._leader = False
        self._conn: Connection | None = None
        self._guard = threading.Lock()  # the lock connection: the competing thread and cycles share it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leader(self) -> bool:
        return self._leader

    def start(self) -> None:
        """Compete once now (so a lone replica leads at once), then keep competing in a thread."""
        self._stop.clear()
        self._tick()
        if self.elected:
            return
        self._thread = threading.Thread(target=self._loop, name="aiqm-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop competing; a leader stops its scheduler (`on_lose`) and releases the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_seconds + 30)
            self._thread = None
        if self._leader:
            self._step_down("stopping")
        with self._guard:
            self._release()

    def confirm(self) -> bool:
        """Whether this replica still leads, asked of PostgreSQL now; a lost lock steps down at once."""
        if self.elected:
            return self._leader
        with self._guard:
            if not self._leader:
                return False
            alive = self._alive()
        if not alive:
            self._step_down("its lock connection was lost")
        return alive

    def _loop(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            self._tick()

    def _tick(self) -> None:
        if self.elected:
            if not self._leader:
                self._leader = True
                self.on_gain()
            return
        if self._leader:
            self.confirm()
            return
        with self._guard:
            elected = self._try_lock()
            self._leader = elected
        if elected:
            log.info("this replica is now the scheduler's leader")
            try:
                self.on_gain()
            except Exception:
                log.exception("the scheduler did not start; giving up the leadership")
                self._step_down("the scheduler did not start")

    def _step_down(self, why: str) -> None:
        with self._guard:
            if not self._leader:  # the other thread stepped down already
                return
            self._leader = False
        log.warning("this replica stops leading the scheduler: %s", why)
        try:
            self.on_lose()
        except Exception:
            log.exception("stopping the scheduler failed")
        with self._guard:
            self._release()

    def _alive(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            return advisory_locks.held(conn, LEADER_LOCK)
        except Exception as exc:
            log.warning("the leader's lock connection failed (%s)", type(exc).__name__)
            return False

    def _try_lock(self) -> bool:
        try:
            if self._conn is None:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                conn.detach()  # never back to the pool: closing it must end the session
                self._conn = conn
                for statement in advisory_locks.keep_alive(conn):  # without them the lock still works
                    log.debug("cannot set %s", statement)
            return advisory_locks.try_acquire(self._conn, LEADER_LOCK)
        except Exception as exc:
            log.warning("cannot compete for the scheduler's leadership (%s); retrying", type(exc).__name__)
            self._release()
            return False

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # Unlocked explicitly: closing alone frees the lock only once the server process
            # has exited, a moment after close() returns, and a successor asking then is refused.
            advisory_locks.release(conn, LEADER_LOCK)
        except Exception:
            log.debug("unlocking the leader lock failed (its session is gone)", exc_info=True)
        try:
            conn.close()  # ends the session, and with it the advisory lock if it is still held
        except Exception:
            log.debug("closing the lock connection failed", exc_info=True)


class LeaderCollector:
    """`aiqm_scheduler_leader`: 1 while this replica runs the scheduled cycles, else 0."""

    def __init__(self, is_leader: Callable[[], bool]) -> None:
        self.is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "aiqm_scheduler_leader",
            "1 while this replica leads (runs the scheduled cycles), 0 while it stands by",
            value=1.0 if self.is_leader() else 0.0,
        )
