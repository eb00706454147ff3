"""review flags, judge runs, notification deliveries, review timings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:49:36.983723
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "judge_runs",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("cycle_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("judge", sa.String(length=128), nullable=False),
        sa.Column("output_id", sa.String(length=200), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_judge_runs")),
    )
    with op.batch_alter_table("judge_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_judge_runs_feature_cycle_at"), ["feature", "cycle_at"], unique=False
        )

    op.create_table(
        "notification_deliveries",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("sink", sa.String(length=200), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint("event_pk", "sink", name=op.f("uq_notification_deliveries_event_pk_sink")),
    )
    op.create_table(
        "review_flags",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("output_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("flagged_by", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_review_flags")),
    )
    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_flags_feature_at"), ["feature", "at"], unique=False)

    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_seconds", sa.Float(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("review_seconds")

    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_flags_feature_at"))

    op.drop_table("review_flags")
    op.drop_table("notification_deliveries")
    with op.batch_alter_table("judge_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_judge_runs_feature_cycle_at"))

    op.drop_table("judge_runs")
