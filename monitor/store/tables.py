"""The store's tables. Migrations in `migrations/` create and change them; this is their shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; every time here is aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

outputs = Table(
    "outputs",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("output_id", String(200), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("input", JSONDoc),
    Column("output", JSONDoc),
    Column("input_length", Integer),
    Column("output_length", Integer),
    Column("model_version", String(200)),
    Column("config_version", String(200)),
    Column("segment", JSONDoc),
    Column("signals", JSONDoc),
    Column("user_action", String(16)),
    Column("metadata", JSONDoc),
    Column("ingested_at", UTCDateTime(), nullable=False),
    UniqueConstraint("feature", "output_id"),
    Index(None, "feature", "ts"),
)

labels = Table(
    "labels",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("output_id", String(200), nullable=False),
    Column("source", String(128), nullable=False),
    Column("source_kind", String(8), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("score", Float),
    Column("reason", Text),
    Column("ts", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("review_seconds", Float),
    UniqueConstraint("feature", "output_id", "source"),
    Index(None, "feature", "received_at"),
)

samples = Table(
    "samples",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("output_id", String(200), nullable=False),
    Column("cycle_at", UTCDateTime(), nullable=False),
    Column("stratum", String(400), nullable=False),
    Column("inclusion_prob", Float, nullable=False),
    Column("low_confidence", Boolean, nullable=False, default=False),
    Column("drawn_at", UTCDateTime(), nullable=False),
    UniqueConstraint("feature", "output_id"),
    Index(None, "feature", "cycle_at"),
)

cycles = Table(
    "cycles",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("window_end", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("outputs", Integer, nullable=False, default=0),
    Column("sampled", Integer, nullable=False, default=0),
    Column("labelled", Integer, nullable=False, default=0),
    Column("pass_rate", Float),
    Column("pass_rate_low", Float),
    Column("pass_rate_high", Float),
    Column("mode", String(16), nullable=False, default="normal"),
    Column("result", JSONDoc, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("duration_seconds", Float),
    Column("restatements", Integer, nullable=False, default=0),
    Column("restated_at", UTCDateTime()),
    UniqueConstraint("feature", "at"),
    # What /metrics reads at every scrape, without touching the results (migration 0003).
    Index(
        "ix_cycles_metrics",
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
    ),
)

baselines = Table(
    "baselines",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("window_end", UTCDateTime(), nullable=False),
    Column("pass_rate", Float),
    Column("pass_rate_low", Float),
    Column("pass_rate_high", Float),
    Column("labelled", Integer, nullable=False, default=0),
    Column("segments", JSONDoc, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("feature", "version"),
)

trigger_states = Table(
    "trigger_states",
    metadata,
    Column("feature", String(64), primary_key=True),
    Column("trigger", String(32), primary_key=True),
    Column("scope", String(300), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("evidence", JSONDoc, nullable=False),
    Column("detector", JSONDoc, nullable=False),
)

trigger_events = Table(
    "trigger_events",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("scope", String(300), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("cycle_at", UTCDateTime()),
    Column("owner", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", JSONDoc, nullable=False),
    Index(None, "feature", "at"),
)

mode_overrides = Table(
    "mode_overrides",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("until", UTCDateTime()),
    Column("set_at", UTCDateTime(), nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("cleared_at", UTCDateTime()),
    Index(None, "feature", "set_at"),
)

features = Table(
    "features",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("mode", String(16), nullable=False, default="normal"),
    Column("mode_reason", Text, nullable=False, default=""),
    Column("mode_since", UTCDateTime(), nullable=False),
    Column("mode_by_override", Boolean, nullable=False, default=False, server_default=false()),
    Column("outputs_total", BigInteger, nullable=False, default=0),
    Column("first_output_ts", UTCDateTime()),
    Column("last_output_ts", UTCDateTime()),
    Column("last_ingest_at", UTCDateTime()),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)


review_flags = Table(
    "review_flags",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("output_id", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("flagged_by", String(200), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Index(None, "feature", "at"),
)

judge_runs = Table(
    "judge_runs",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("cycle_at", UTCDateTime()),
    Column("judge", String(128), nullable=False),
    Column("output_id", String(200), nullable=False),
    Column("verdict", String(8)),
    Column("rationale", Text),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms", Float),
    Column("error", Text),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "feature", "cycle_at"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("event_pk", BigInteger, nullable=False),
    Column("sink", String(200), nullable=False),
    Column("feature", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Column("claimed_at", UTCDateTime()),  # when a notifier took it to send (migration 0007)
    Column("next_attempt_at", UTCDateTime()),  # `waiting`: when the next round of tries is due
    UniqueConstraint("event_pk", "sink"),
)


daemon_secrets = Table(
    "daemon_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

# The weekly digest (`monitor.reporting.digest`): one row per (feature, cycle, channel), so each week's
# digest goes out once per channel, and a failed sending is retried.
digest_deliveries = Table(
    "digest_deliveries",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("feature", String(64), nullable=False),
    Column("cycle_at", UTCDateTime(), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    UniqueConstraint("feature", "cycle_at", "channel"),
)

# Pull mode (`monitor.intake.pull_jsonl`): how far each followed JSONL file was read, by device and inode.
pull_positions = Table(
    "pull_positions",
    metadata,
    Column("source", String(1000), primary_key=True),
    Column("device", BigInteger, primary_key=True),
    Column("inode", BigInteger, primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("path", String(1000), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Pull mode (`monitor.intake.pull_sql`): the last cursor value and id copied from each source table.
pull_watermarks = Table(
    "pull_watermarks",
    metadata,
    Column("source", String(1000), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("last_id", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


Row = dict[str, Any]
