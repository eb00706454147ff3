"""The daemon's scheduler: one cron job per feature, kept in the store so that restarts resume it.

APScheduler 3's `BackgroundScheduler` keeps its jobs in the same database as everything else
(its own table, `aiqm_scheduler_jobs`), one job per feature, id `cycle:<feature>`, on the
feature's cron schedule (UTC, standard weekday numbering via `monitor.decide.schedule.cron`).

Exactly once across restarts
    A job's next run time is stored. When the daemon was down over a scheduled time, the stored
    time is in the past at the next start, and APScheduler runs the job once: `coalesce` folds
    several missed times into one, and the misfire grace of one period (the longest gap between
    the schedule's fire times) means the latest missed time is always within grace. That is why
    jobs are never re-added on start (re-adding with `replace_existing=True` would compute a
    fresh next run time in the future and silently drop the missed run): a job that exists keeps
    its next run time; only its schedule, grace or arguments are updated when the config changed.
    A cycle interrupted by a crash (its row still `running`) is finished at the next start. The
    job runs the cycle due at the time it runs (`last_fire_time`), and a cycle is idempotent per
    (feature, scheduled time), so a run that happens twice anyway changes nothing.

Never two cycles of one feature at once: `max_instances=1`, and a per-feature lock in case a
job and a manual run meet. `shutdown(wait=True)` stops taking jobs and lets a running cycle
finish (the daemon calls it on SIGTERM).

Replicas: on PostgreSQL several daemons may share the store; only the leader (`monitor.daemon.leader`,
a session-level advisory lock) runs the jobs, the others stand by and take over when it dies.
`start()` competes for the leadership; a scheduler that is not the leader is `active` but not
`running`. On SQLite the daemon is always the leader.

Jobs in the store refer to the function `run_scheduled_cycle` and to `(key, feature)`, where
`key` names the running `FeatureScheduler` of this process for that store (jobs are pickled:
the scheduler itself cannot be stored in them). APScheduler drops a stored job whose function
reference no longer imports, so when the function moves, the references stored by earlier
releases are rewritten before the jobs are loaded (`MOVED_FUNCTIONS`).

Two clocks: which cycle is due, which one was interrupted and a schedule's period are the
daemon's clock's (`services.clock`, which tests set); a job's next run time is APScheduler's,
which fires jobs by the wall clock (`_timer_now`), and no injected clock moves it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from monitor.decide.schedule import cron, last_fire_time, period
from monitor.errors import InputError
from monitor.store.cycle_queries import feature_names, running_cycles
from monitor.store.scheduler_jobs import JOBS_TABLE, point_jobs_at_moved_functions

if TYPE_CHECKING:
    from apscheduler.job import Job

    from monitor.cycle.result import CycleOutcome
    from monitor.daemon.leader import Leadership
    from monitor.daemon.services import Services

__all__ = ["JOBS_TABLE", "MOVED_FUNCTIONS", "FeatureScheduler", "job_id", "run_scheduled_cycle"]

log = logging.getLogger(__name__)

MOVED_FUNCTIONS: Mapping[str, str] = {
    # Where `run_scheduled_cycle` lived before (old -> new `module:function`). A store may skip
    # releases: a later move adds a line and points the earlier ones at the new place too.
    "monitor.scheduler:run_scheduled_cycle": "monitor.daemon.scheduler:run_scheduled_cycle",
}
DIGEST_SECONDS = 60  # how often the leader sends the digests that are due
NOTIFY_SECONDS = 60  # how often the leader sends the notifications that are due
SYNC_SECONDS = 60  # how often features that appeared in the store (say by `aiqm ingest`) get jobs
_REGISTRY: dict[str, FeatureScheduler] = {}
_REGISTRY_LOCK = threading.Lock()


JOB_PREFIX = "cycle:"


def job_id(feature: str) -> str:
    return f"{JOB_PREFIX}{feature}"


def run_scheduled_cycle(key: str, feature: str) -> None:
    """What a stored job calls: the feature's due cycle, on the scheduler of this process."""
    with _REGISTRY_LOCK:
        scheduler = _REGISTRY.get(key)
    if scheduler is None:
        log.error("no running scheduler for job %s (key %s); skipped", job_id(feature), key)
        return
    scheduler.run_due(feature)


class FeatureScheduler:
    """Runs each feature's cycle on its schedule; see the module's docstring."""

    def __init__(
        self, services: Services, *, sync_seconds: float = SYNC_SECONDS, max_workers: int = 4
    ) -> None:
        self.services = services
        url = services.engine.url.render_as_string(hide_password=False)
        self.key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        self.sync_seconds = sync_seconds
        self._locks: dict[str, threading.Lock] = {}
        self._known: frozenset[str] = frozenset()
        self._locks_guard = threading.Lock()
        self._sync_lock = threading.Lock()  # one registration at a time in this process
        self._max_workers = max_workers
        self._leadership: Leadership | None = None
        self._stop_wait = False
        self._scheduler = self._new_scheduler()

    def _new_scheduler(self) -> BackgroundScheduler:
        return BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.services.engine, tablename=JOBS_TABLE),
                "memory": MemoryJobStore(),
            },
            executors={"default": ThreadPoolExecutor(max_workers=self._max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    # ------------------------------------------------------------------ life cycle

    @property
    def running(self) -> bool:
        """Whether jobs are being run (started and not shut down)."""
        return bool(self._scheduler.running)

    @property
    def active(self) -> bool:
        """Started and not shut down: running the jobs (the leader) or standing by for the lock."""
        return self._leadership is not None

    @property
    def leader(self) -> bool:
        """Whether this process leads (runs the scheduled cycles)."""
        return self._leadership is not None and self._leadership.leader

    def start(self, *, retry_seconds: float | None = None) -> None:
        """Compete for the leadership; as leader (at once on SQLite, or when elected), run the jobs."""
        if self._leadership is not None:
            return
        from monitor.daemon.leader import RETRY_SECONDS, Leadership

        self._stop_wait = False
        leadership = Leadership(
            self.services.engine,
            self._start_jobs,
            lambda: self._stop_jobs(self._stop_wait),
            retry_seconds=RETRY_SECONDS if retry_seconds is None else retry_seconds,
        )
        self._leadership = leadership
        try:
            leadership.start()
        except BaseException:
            self._leadership = None
            leadership.stop()
            raise

    def _start_jobs(self) -> None:
        """Load the stored jobs, add the missing ones, then start running them (missed ones first)."""
        if self._scheduler.state != STATE_STOPPED:
            return
        with _REGISTRY_LOCK:
            other = _REGISTRY.get(self.key)
            if other is not None and other is not self and other.running:
                raise RuntimeError("another scheduler of this process runs on the same store")
            _REGISTRY[self.key] = self
        try:
            self._upgrade_stored_jobs()  # before APScheduler loads (or drops) them
            self._scheduler.start(paused=True)
            self.sync()
            self._finish_interrupted()
            self._add_chores()
        except BaseException:
            self._stop_jobs(wait=False)
            raise
        self._scheduler.resume()
        log.info("scheduler started with %d feature job(s)", len(self.jobs()))

    def _upgrade_stored_jobs(self) -> None:
        """Point jobs stored by an earlier release, whose function has moved since, at its place now."""
        rewritten = point_jobs_at_moved_functions(self.services.engine, MOVED_FUNCTIONS)
        if rewritten:
            log.info("pointed %d stored job(s) at the moved cycle function: %s", len(rewritten), rewritten)

    def _add_chores(self) -> None:
        """The leader's own chores, in memory (every leader adds them again when elected)."""
        self._every("aiqm:sync", self.sync_seconds, self.sync)
        pull = self.services.settings.pull
        if pull.jsonl_dirs or pull.sql is not None:  # pull mode: only the leader pulls
            self._every("aiqm:pull", pull.interval_seconds, self.pull, at_once=True)
        if self.services.notifier is not None:  # transitions waiting for a receiver
            self._every("aiqm:notify", NOTIFY_SECONDS, self.notify)
        if self.services.settings.digest is not None:  # digests queued, or failed and waited
            self._every("aiqm:digests", DIGEST_SECONDS, self.send_digests)

    def _timer_now(self) -> datetime:
        """APScheduler's now: the time a job's next run time is compared with and set from.

        APScheduler fires jobs by the wall clock (it reads `datetime.now` itself, to wait and to
        judge misfires), so job times cannot follow `services.clock`: a test's clock months in
        the past would make every job look overdue by months.
        """
        return datetime.now(self._scheduler.timezone)

    def _every(self, job: str, seconds: float, run: Callable[[], None], *, at_once: bool = False) -> None:
        """Run `run` every `seconds` on this (the leader's) scheduler; first now, or after `seconds`."""
        first = {"next_run_time": self._timer_now()} if at_once else {}
        self._scheduler.add_job(
            run, "interval", seconds=seconds, id=job, jobstore="memory", replace_existing=True, **first
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs and competing; with `wait`, let a running cycle finish first."""
        leadership, self._leadership = self._leadership, None
        self._stop_wait = wait
        if leadership is not None:
            leadership.stop()
        self._stop_jobs(wait)

    def notify(self) -> None:
        """Send the trigger transitions that are due (new, or waiting for their next round)."""
        notifier = self.services.notifier
        if notifier is None:
            return
        try:
            notifier.deliver_new()
        except Exception:
            log.exception("sending the due notifications failed; tried again in %d s", NOTIFY_SECONDS)

    def send_digests(self) -> None:
        """Send the weekly digests that are due (queued, or failed and waited); a failure is logged."""
        from monitor.reporting.digest import send_due

        try:
            send_due(self.services.engine, self.services.settings, self.services.clock())
        except Exception:
            log.exception("sending the due digests failed; tried again in %d s", DIGEST_SECONDS)

    def pull(self) -> None:
        """One pass of pull mode (`monitor.intake.pull_jsonl`, `.pull_sql`); a failure is logged."""
        from monitor.intake.privacy import storage_redaction
        from monitor.intake.pull_jsonl import pull_jsonl

        settings = self.services.settings
        try:
            if settings.pull.jsonl_dirs:
                summary = pull_jsonl(
                    self.services.engine,
                    settings.pull.jsonl_dirs,
                    settings.pull.pattern,
                    self.services.clock,
                    prepare=storage_redaction(settings),
                )
                if summary.lines:
                    log.info("%s", summary.describe())
                    for path, bad in summary.bad_lines:
                        log.warning("%s", bad.describe(path))
            sql = settings.pull.sql
            if sql is not None:
                from monitor.intake.pull_sql import pull_configured

                pulled = pull_configured(
                    self.services.engine,
                    sql,
                    now=self.services.clock,
                    rejects_dir=settings.data_dir,
                    prepare=storage_redaction(settings),
                )
                if pulled.rows:
                    log.info("%s", pulled.describe(sql.table))
                    for bad in pulled.bad_rows:
                        log.warning("%s", bad.describe(f"{sql.table} row"))
        except Exception:
            log.exception("pull failed; retrying at the next interval")

    def _stop_jobs(self, wait: bool) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = self._new_scheduler()  # a new leadership starts a fresh one
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.key) is self:
                del _REGISTRY[self.key]

    # ------------------------------------------------------------------ jobs

    def jobs(self) -> dict[str, Job]:
        """The stored feature jobs by feature name (APScheduler `Job`s)."""
        return {
            job.args[1]: job
            for job in self._scheduler.get_jobs(jobstore="default")
            if job.id.startswith(JOB_PREFIX) and len(job.args) == len(("key", "feature"))
        }

    def next_run_time(self, feature: str) -> datetime | None:
        job = self._scheduler.get_job(job_id(feature), jobstore="default")
        return None if job is None else job.next_run_time

    def ensure(self, features: Iterable[str]) -> None:
        """Give features just seen (say in an ingested batch) their jobs, if they have none yet.

        Called by the request that stored the batch, in many threads at once when several
        clients send a new feature's first batches: registration is serialised in this process,
        a job another process added first is kept (APScheduler's `ConflictingIdError`), and this
        never raises, because the batch is stored already; a failure is logged and the next sync
        (every `sync_seconds`) tries again. A replica standing by registers nothing: the leader's
        sync gives the feature its job.
        """
        new = set(features) - self._known
        if not new or not self.running:
            return
        try:
            with self._sync_lock:
                new -= self._known
                if new and self.running:
                    now = self.services.clock()
                    for feature in sorted(new):
                        self._add(feature, now)
                    self._known = self._known | new
        except Exception:
            log.exception("could not schedule %s yet; the next sync tries again", ", ".join(sorted(new)))

    def sync(self, features: Iterable[str] = ()) -> None:
        """Give every feature (the config's, the store's, and `features`) its job; keep existing ones.

        A job that exists keeps its next run time, so a run missed while the daemon was down
        still runs; when the feature's schedule changed, the job takes the new one (and its next
        run time is the new schedule's, unless a missed run is waiting).
        """
        try:
            with self.services.engine.connect() as conn:
                stored = set(feature_names(conn))
        except Exception:
            log.exception("cannot read the store's features; jobs unchanged")
            return
        wanted = sorted({*self.services.settings.features, *stored, *features})
        with self._sync_lock:
            existing = self.jobs()
            daemon_now = self.services.clock()
            for feature in wanted:
                job = existing.get(feature)
                if job is None:
                    self._add(feature, daemon_now)
                else:
                    self._update(feature, job, daemon_now)
            self._known = frozenset(wanted)

    def _add(self, feature: str, daemon_now: datetime) -> None:
        """Add the feature's job; one that exists already (another process added it) is kept."""
        expression = self.services.settings.feature(feature).schedule
        try:
            self._scheduler.add_job(
                run_scheduled_cycle,
                cron(expression),
                args=(self.key, feature),
                id=job_id(feature),
                name=f"cycle of {feature} ({expression})",
                jobstore="default",
                misfire_grace_time=self._grace(expression, daemon_now),
                coalesce=True,
                max_instances=1,
                replace_existing=False,
            )
        except ConflictingIdError:
            log.info("the job of %s exists already (added by another process); kept", feature)
            return
        log.info("scheduled %s: %s UTC", feature, expression)

    @staticmethod
    def _grace(expression: str, daemon_now: datetime) -> int:
        return max(60, int(period(expression, daemon_now).total_seconds()))

    def _update(self, feature: str, job: Job, daemon_now: datetime) -> None:
        """Bring an existing job in line with the config (schedule, grace, arguments)."""
        expression = self.services.settings.feature(feature).schedule
        trigger = cron(expression)
        grace = self._grace(expression, daemon_now)
        changes: dict[str, Any] = {}
        if str(job.trigger) != str(trigger):
            now = self._timer_now()
            changes["trigger"] = trigger
            changes["name"] = f"cycle of {feature} ({expression})"
            if job.next_run_time is None or job.next_run_time > now:
                changes["next_run_time"] = trigger.get_next_fire_time(None, now)
        if tuple(job.args) != (self.key, feature):
            changes["args"] = (self.key, feature)
        if job.misfire_grace_time != grace:
            changes["misfire_grace_time"] = grace
        if not changes:
            return
        try:
            self._scheduler.modify_job(job.id, jobstore="default", **changes)
        except JobLookupError:
            log.info("the job of %s was removed meanwhile; the next sync adds it again", feature)
            return
        log.info("updated the job of %s: %s", feature, ", ".join(sorted(changes)))

    def _finish_interrupted(self) -> None:
        """A feature whose latest due cycle was left `running` (a crash) runs it again at start."""
        now = self._timer_now()
        with self.services.engine.connect() as conn:
            unfinished = running_cycles(conn)
        clock = self.services.clock()
        for feature, job in self.jobs().items():
            due = self._due(feature, clock)
            if due is not None and (feature, due) in unfinished:
                if job.next_run_time is None or job.next_run_time > now:
                    self._scheduler.modify_job(job.id, jobstore="default", next_run_time=now)
                log.info("the cycle of %s at %s was interrupted; finishing it", feature, due.isoformat())

    def _due(self, feature: str, now: datetime) -> datetime | None:
        expression = self.services.settings.feature(feature).schedule
        return last_fire_time(
            expression, now, lookback=max(period(expression, now), timedelta(minutes=1)) * 2
        )

    # ------------------------------------------------------------------ running a cycle

    def _lock(self, feature: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(feature, threading.Lock())

    def run_due(self, feature: str) -> CycleOutcome | None:
        """Run the feature's cycle due now (the schedule's latest time), then deliver notifications.

        Never raises: a failing cycle is logged, and the next scheduled time tries again.
        """
        lock = self._lock(feature)
        if not lock.acquire(blocking=False):
            log.warning("the cycle of %s is still running; this run is skipped", feature)
            return None
        try:
            leadership = self._leadership
            if leadership is not None and not leadership.confirm():
                log.warning("the cycle of %s is left to the new leader: this replica lost its lock", feature)
                return None
            at = self._due(feature, self.services.clock())
            if at is None:
                return None
            outcome = self.services.runner.run(feature, at)
            self.services.read_cache.forget(("mode", feature))  # the app sees the new mode at once
            alerts = ", ".join(f"{a.trigger}[{a.scope}]={a.state}" for a in outcome.alerts) or "none"
            log.info(
                "cycle %s at %s done: mode=%s, %d outputs, %d sampled, alerts: %s",
                feature,
                at.isoformat(),
                outcome.mode,
                outcome.outputs,
                outcome.sampled,
                alerts,
            )
            from monitor.reporting.after_cycle import after_cycles  # never raises

            services = self.services  # the budget check, the weekly digest, the notifications
            after_cycles(
                services.engine,
                services.settings,
                [(feature, at)],
                services.clock,
                services.notifier,
                feature,
            )
            return outcome
        except InputError as exc:
            log.warning("cycle %s not run: %s", feature, exc)
            return None
        except Exception:
            log.exception("cycle %s failed", feature)
            return None
        finally:
            lock.release()
