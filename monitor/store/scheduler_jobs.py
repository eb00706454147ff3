"""APScheduler's job store (table `aiqm_scheduler_jobs`): the function each stored job calls.

APScheduler 3 keeps a job as its pickled state, a dict whose 'func' is the `module:function`
reference of what the job calls. A job whose reference no longer imports is deleted when the
jobs are loaded ("Unable to restore job ... removing it"), and with it the run it was waiting
for. So when a scheduled function moves, the stored references are rewritten before APScheduler
loads them (`point_jobs_at_moved_functions`).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping

from sqlalchemy import Engine, LargeBinary, String, column, inspect, select, table, update

__all__ = ["JOBS_TABLE", "point_jobs_at_moved_functions"]

JOBS_TABLE = "aiqm_scheduler_jobs"  # created by APScheduler's SQLAlchemyJobStore on its first start
_jobs = table(JOBS_TABLE, column("id", String), column("job_state", LargeBinary))


def point_jobs_at_moved_functions(engine: Engine, moved: Mapping[str, str]) -> list[str]:
    """Rewrite each stored job that calls an old reference of `moved` (old -> new) to call the
    new one; return the ids rewritten. One transaction; a job's next run time, trigger and
    arguments are left as they are, and a second call finds nothing to do."""
    with engine.begin() as conn:
        if not inspect(conn).has_table(JOBS_TABLE):
            return []
        rows = conn.execute(select(_jobs.c.id, _jobs.c.job_state).with_for_update()).all()
        rewritten: list[str] = []
        for job_id, blob in rows:
            if not any(old.encode("utf-8") in blob for old in moved):
                continue  # cannot name a moved function: left alone, and not unpickled
            state = pickle.loads(blob)
            new = moved.get(state.get("func"))
            if new is None:
                continue
            state["func"] = new
            conn.execute(
                update(_jobs)
                .where(_jobs.c.id == job_id)
                .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            )
            rewritten.append(job_id)
    return rewritten
