"""Revision 0008 (`features.mode_by_override`): a store from before it upgrades in place, and a
mode an override wrote there (its reason said so) is marked as the override's."""

from __future__ import annotations

from sqlalchemy import Engine, column, insert, select, table
from test_migrations import AT, current_revision, downgrade

from monitor.store.engine import migrate
from monitor.store.tables import UTCDateTime, features


def test_modes_stored_by_an_override_are_marked_by_the_upgrade(engine: Engine) -> None:
    head = current_revision(engine)
    downgrade(engine, "0007")
    reasons = {
        "drafts": "manual override: incident 42",
        "summarizer": "fallback: quality below the floor",
        "support-reply": "",
    }
    old = table(  # the columns before 0008 (the declared table would also write the new one)
        "features",
        *(column(name) for name in ("name", "mode", "mode_reason", "outputs_total")),
        column("mode_since", UTCDateTime()),
    )
    with engine.begin() as conn:
        conn.execute(
            insert(old).values(
                [
                    {"name": name, "mode": "off", "mode_reason": reason, "mode_since": AT, "outputs_total": 1}
                    for name, reason in reasons.items()
                ]
            )
        )
    migrate(engine)
    assert current_revision(engine) == head
    with engine.connect() as conn:
        marked = dict(conn.execute(select(features.c.name, features.c.mode_by_override)).all())
    assert marked == {"drafts": True, "summarizer": False, "support-reply": False}
