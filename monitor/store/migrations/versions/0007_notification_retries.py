"""notification deliveries: when one was claimed, and when a waiting one is tried again

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 06:15:00.000000

A webhook that stays down through a round of tries is tried again later (status `waiting`,
`next_attempt_at`), and a delivery whose notifier died while sending (`sending` since
`claimed_at`, long ago) is sent again, so a trigger transition is not lost.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("claimed_at")
