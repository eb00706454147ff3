"""The daemon's settings: webhooks, the digest, tokens, the server, metrics, privacy, pull mode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import Role, _Strict, regular_expressions
from monitor.config.judges import JUDGE_NAME_PATTERN

__all__ = [
    "DigestSettings",
    "MetricsSettings",
    "PrivacySettings",
    "PullSettings",
    "ServerSettings",
    "SqlPullSettings",
    "TokenSettings",
    "WebhookSettings",
]


class WebhookSettings(_Strict):
    """A sink for trigger transitions: generic JSON or a Slack-compatible incoming webhook."""

    name: str = Field(pattern=JUDGE_NAME_PATTERN)
    url: str = Field("", description="where to POST; a Slack URL is a secret: prefer url_env")
    url_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env variable with the URL")
    kind: Literal["json", "slack"] = "json"
    features: tuple[str, ...] = Field((), description="only these features' transitions; empty: all")
    max_attempts: int = Field(5, ge=1)
    timeout_seconds: float = Field(10.0, gt=0)
    backoff_seconds: float = Field(1.0, ge=0, description="first retry's wait; doubles each attempt")
    max_age_hours: float = Field(
        24.0, gt=0, description="older transitions, first seen by this sink, are recorded as skipped"
    )

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSettings:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("set exactly one of url and url_env")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self

    def resolved_url(self) -> str:
        """The URL to POST to (read from the environment at send time when `url_env` is set)."""
        return self.url or os.environ.get(self.url_env, "")


class DigestSettings(_Strict):
    """The weekly digest (`aiqm report` after each cycle): email over SMTP and/or named webhooks."""

    smtp_host: str = Field("", description="the SMTP server; empty: no email")
    smtp_port: int = Field(25, ge=1, le=65535)
    sender: str = Field("", alias="from", description="the From address")
    to_owner: bool = Field(True, description="send to the feature's owner (when it is an email address)")
    to: tuple[str, ...] = Field((), description="more recipients, for every feature")
    starttls: bool = False
    username_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env var: SMTP user")
    password_env: str = Field(
        "", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env var: SMTP password"
    )
    timeout_seconds: float = Field(30.0, gt=0)
    webhooks: tuple[str, ...] = Field((), description="names of `webhooks` the digest is POSTed to")


class TokenSettings(_Strict):
    name: str
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token, never the token")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(10_000_000, ge=1024)
    max_batch: int = Field(5000, ge=1)
    metrics_token_sha256: str = Field(
        "",
        pattern=r"^([0-9a-f]{64})?$",
        description="sha256 hex of a bearer token /metrics then requires (empty: /metrics is open)",
    )
    metrics_role: Role | None = Field(
        None, description="/metrics also admits any API token of this role (or admin); None: open"
    )
    session_secret_env: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
        description="env variable whose value signs review sessions (empty: a secret stored in the store)",
    )
    read_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="how long a polled mode and the stored tokens are reused before the store is read "
        "again (changes made elsewhere show within this time; 0: read every time)",
    )


class MetricsSettings(_Strict):
    """What `/metrics` exports: cardinality bounds (the overflow is counted, never silently cut)."""

    max_scopes_per_feature: int = Field(
        20, ge=0, description="segment scopes per feature per metric; the rest are counted as dropped"
    )
    max_signals_per_feature: int = Field(
        60, ge=0, description="drift signals per feature; the rest are counted as dropped"
    )


class PrivacySettings(_Strict):
    """Redaction of personal data and retention of raw text (see `monitor.intake.privacy`)."""

    redact: bool = Field(False, description="replace e-mails, phones, card numbers, IBANs and `patterns`")
    patterns: tuple[str, ...] = Field((), description="more regular expressions to redact")
    redact_before: Literal["storage", "judges"] = Field(
        "storage", description="storage: redact at ingest; judges: store raw, redact what judges see"
    )
    retention_days: float | None = Field(
        None, gt=0, description="raw inputs and outputs older than this are deleted (None: kept)"
    )
    unsampled_text: Literal["keep", "delete"] = Field(
        "keep",
        description="delete: after each cycle, the raw input and output of outputs no cycle sampled "
        "and no later cycle can sample are deleted (lengths kept for drift); keep: kept until retention",
    )

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return regular_expressions(value)


class SqlPullSettings(_Strict):
    """The app's own table or view (see `monitor.intake.pull_sql`), copied incrementally."""

    url: str = Field(description="SQLAlchemy URL of the app's database")
    table: str = Field(min_length=1, description="table or view, optionally schema-qualified")
    columns: dict[str, str] = Field(description="output field -> column: id and ts at least")
    feature: str | None = Field(None, description="the feature of every row, unless columns maps one")
    cursor: str | None = Field(None, description="column the copy advances by (default: the ts column)")
    batch: int = Field(5_000, ge=1)
    copy_text: Literal["sampled", "all"] = Field(
        "sampled",
        description="sampled: copy every row but the input and output text (their lengths are kept for "
        "drift) and read the text of the outputs a cycle samples from the table then; all: copy it all",
    )
    lookback_seconds: float = Field(
        0.0,
        ge=0,
        description="a date-time cursor: each pass reads again this far before the watermark, so rows "
        "committed late with an earlier time are copied too (copies are told apart by id)",
    )


class PullSettings(_Strict):
    """Pull mode (see `monitor.intake.pull_jsonl`): read outputs where the app already writes them."""

    jsonl_dirs: tuple[Path, ...] = Field((), description="directories of JSONL logs shared with the app")
    pattern: str = Field("*.jsonl", min_length=1, description="which files of those directories are logs")
    interval_seconds: float = Field(60.0, gt=0, description="how often the daemon pulls new lines")
    sql: SqlPullSettings | None = Field(None, description="the app's table or view; None: none")
