"""daemon secrets shared by replicas (the review session secret)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:00:00.000000

Several `aiqm serve` replicas on one PostgreSQL must sign and check the review page's session
cookies with one secret; the first replica to start stores a random one here, the others read it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("daemon_secrets")
