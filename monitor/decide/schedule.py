"""When cycles run: cron expressions in UTC, evaluated for a given clock (never the wall clock)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from monitor.errors import ConfigError
from monitor.formats import CRON_FIELDS

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _standard_weekdays(field: str) -> str:
    """Standard cron counts weekdays from Sunday = 0; APScheduler 3 from Monday = 0. Use names."""
    return re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: WEEKDAYS[int(m.group(1))], field)


def cron(expression: str) -> CronTrigger:
    """A trigger for a standard five-field cron expression, in UTC."""
    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise ConfigError(f"schedule {expression!r} must have five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_standard_weekdays(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        raise ConfigError(f"schedule {expression!r} is not a valid cron expression: {exc}") from None


def fire_times(expression: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every time the schedule fires in [after, until]."""
    trigger = cron(expression)
    previous = None
    moment = trigger.get_next_fire_time(None, after)
    while moment is not None and moment <= until:
        yield moment.astimezone(UTC)
        previous = moment
        moment = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))


def last_fire_time(
    expression: str, now: datetime, lookback: timedelta = timedelta(days=400)
) -> datetime | None:
    """The latest time the schedule fired at or before `now` (None if not within `lookback`).

    Looks back over growing spans (an hour, then 16 times longer each step), so that a
    per-minute schedule does not walk through 400 days of minutes.
    """
    span = min(timedelta(hours=1), lookback)
    while True:
        latest = None
        for moment in fire_times(expression, now - span, now):
            latest = moment
        if latest is not None or span >= lookback:
            return latest
        span = min(span * 16, lookback)


def period(expression: str, now: datetime, fires: int = 8) -> timedelta:
    """The longest gap between the schedule's next `fires` fire times after `now`."""
    trigger = cron(expression)
    moment = trigger.get_next_fire_time(None, now)
    longest = timedelta(0)
    for _ in range(fires):
        if moment is None:
            break
        following = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
        if following is None:
            break
        longest = max(longest, following - moment)
        moment = following
    return longest
