"""pull mode's positions (JSONL files) and watermarks (SQL tables)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:20:00.000000

Before this revision `aiqm pull` created these two tables itself on first use; a store where it
did keeps them as they are (same columns), so each table is created only where it is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _exists(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if not _exists("pull_positions"):
        op.create_table(
            "pull_positions",
            sa.Column("source", sa.String(length=1000), nullable=False),
            sa.Column("device", sa.BigInteger(), nullable=False),
            sa.Column("inode", sa.BigInteger(), nullable=False),
            sa.Column("offset", sa.BigInteger(), nullable=False),
            sa.Column("lines", sa.Integer(), nullable=False),
            sa.Column("path", sa.String(length=1000), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("source", "device", "inode"),
        )
    if not _exists("pull_watermarks"):
        op.create_table(
            "pull_watermarks",
            sa.Column("source", sa.String(length=1000), nullable=False),
            sa.Column("cursor", sa.Text(), nullable=False),
            sa.Column("last_id", sa.Text(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("source"),
        )


def downgrade() -> None:
    op.drop_table("pull_watermarks")
    op.drop_table("pull_positions")
