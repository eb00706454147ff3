"""The contract's shared formats: what a feature name may be, and how a moment is read and written.

One place for them, so that the API, the CLI, webhooks, status and the records agree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from monitor.errors import InputError

__all__ = [
    "CRON_FIELDS",
    "FEATURE_NAME_PATTERN",
    "FEATURE_NAME_RE",
    "RFC3339_RE",
    "format_ts",
    "format_ts_or_none",
    "is_feature_name",
    "parse_ts",
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


RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
"""A moment as the contract writes it: RFC 3339 with its zone (`Z` or an offset)."""


def parse_ts(value: Any, field: str = "ts") -> datetime:
    """An RFC 3339 timestamp with its zone, as an aware UTC datetime; else InputError naming `field`.

    The one parser of every moment the daemon accepts (records, the override's `until`, the
    CLI's `--at`, the review page's `cycle`). A moment that has no UTC equivalent Python can
    hold (`9999-12-31T23:59:59-01:00` is in year 10000 in UTC) is refused like any other bad
    value. Fractional digits past the sixth are truncated (Python keeps microseconds).
    """
    if type(value) is not str or RFC3339_RE.fullmatch(value) is None:
        raise InputError(
            f"must be an RFC 3339 timestamp with a zone, like 2026-03-02T06:00:00Z; got {value!r:.60}",
            field=field,
        )
    if value[10] == "t" or value[-1] == "z":
        value = value.upper()
    try:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InputError(f"is not a valid date and time in UTC: {exc}", field=field) from None
