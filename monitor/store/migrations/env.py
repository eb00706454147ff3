"""Alembic environment: runs on the connection the store hands over (see `monitor.store.engine`)."""

from __future__ import annotations

from alembic import context

from monitor.store.tables import metadata

# The scheduler's job table belongs to APScheduler, which creates it (monitor/daemon/scheduler.py).
FOREIGN_TABLES = frozenset({"aiqm_scheduler_jobs"})


def include_object(
    _object: object, name: str | None, kind: str, reflected: bool, _compare_to: object
) -> bool:
    """Autogenerate leaves tables it does not own alone (it would propose dropping them)."""
    return not (kind == "table" and reflected and name in FOREIGN_TABLES)


connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: use the URL from the ini or AIQM_DATABASE_URL
    from sqlalchemy import create_engine

    from monitor.config import load_settings

    url = context.config.get_main_option("sqlalchemy.url") or load_settings().resolved_database_url
    with create_engine(url).connect() as conn:
        context.configure(
            connection=conn, target_metadata=metadata, render_as_batch=True, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()
