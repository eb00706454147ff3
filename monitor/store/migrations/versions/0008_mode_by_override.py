"""features.mode_by_override: whether an override wrote the stored mode

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00.000000

A stored mode that an override wrote holds only while that override lasts; once it ends, the
triggers decide the mode again (`monitor.decide.modes`). The readers used to recognise such a
mode by its reason's text (`manual override: ...`); this column says it as a fact. Rows stored
before this revision get it from that text, once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("features") as batch:
        batch.add_column(
            sa.Column("mode_by_override", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    features = sa.table(
        "features", sa.column("mode_reason", sa.Text), sa.column("mode_by_override", sa.Boolean)
    )
    op.execute(
        features.update()
        .where(features.c.mode_reason.like("manual override:%"))
        .values(mode_by_override=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("features") as batch:
        batch.drop_column("mode_by_override")
