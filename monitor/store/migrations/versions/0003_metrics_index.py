"""an index covering what /metrics reads of the cycles, so a scrape never reads their results

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00.000000

A cycle's row carries its results (JSON, kilobytes); SQLite stores the columns after it past
the row's overflow pages, so even counting cycles read every result. `/metrics` reads only these
columns at each scrape (and a result only when its cycle changed), from this index alone.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = [
    "feature",
    "status",
    "at",
    "sampled",
    "pass_rate",
    "started_at",
    "finished_at",
    "duration_seconds",
    "restatements",
    "restated_at",
]


def upgrade() -> None:
    with op.batch_alter_table("cycles", schema=None) as batch_op:
        batch_op.create_index("ix_cycles_metrics", COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cycles", schema=None) as batch_op:
        batch_op.drop_index("ix_cycles_metrics")
