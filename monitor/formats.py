"""The contract's shared formats: what a feature name may be, and how a moment is written.

One place for both, so that the API, the CLI, webhooks, status and the records agree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "CRON_FIELDS",
    "FEATURE_NAME_PATTERN",
    "FEATURE_NAME_RE",
    "format_ts",
    "format_ts_or_none",
    "is_feature_name",
]

CRON_FIELDS = 5
"""A schedule is a standard cron expression: minute hour day month weekday, in UTC."""

FEATURE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A feature's name: 1 to 64 letters, digits, `_`, `.` or `-` (also a judge's name)."""

FEATURE_NAME_RE = re.compile(FEATURE_NAME_PATTERN[1:-1])
"""The same, to be matched with `fullmatch` (`$` would let a trailing newline through)."""


def is_feature_name(text: object) -> bool:
    return isinstance(text, str) and FEATURE_NAME_RE.fullmatch(text) is not None


def format_ts(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`: `2026-03-02T06:00:00Z` (microseconds only when there are some).

    A naive moment is taken as UTC, as the store gives them back on SQLite.
    """
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def format_ts_or_none(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment is not None else None
