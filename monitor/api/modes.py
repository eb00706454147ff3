"""A feature's mode as the app sees it: what the last cycle decided, unless a person overrode it.

Read from the store, never recomputed: the `features` row holds the mode the latest cycle (or
override) set, `mode_overrides` the overrides, `trigger_states` the triggers. An active
override (not cleared, `until` not passed) wins; an override that ended since the last cycle
stored it no longer sets the mode: the `fallback` trigger decides again, as `aiqm status` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select

from monitor.config import Settings
from monitor.formats import format_ts_or_none, is_feature_name
from monitor.store import cycle_queries as q
from monitor.store.tables import cycles, mode_overrides

__all__ = ["ACTIVE_STATES", "FeatureMode", "known_features", "mode_of", "trigger_mode"]

ACTIVE_STATES = ("firing", "pending")
_STATE_ORDER = {"firing": 0, "pending": 1}
Source = Literal["default", "cycle", "override"]


@dataclass(frozen=True)
class FeatureMode:
    """What `GET /v1/features/{feature}/status` and OFREP answer."""

    feature: str
    mode: str
    reason: str
    since: datetime | None
    source: Source
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "mode": self.mode,
            "triggers": self.triggers,
            "reason": self.reason,
            "since": format_ts_or_none(self.since),
        }


def known_features(conn: Connection, settings: Settings) -> list[str]:
    """The features the store knows and the ones the config names."""
    return sorted({*q.feature_names(conn), *settings.features})


def trigger_mode(rows: list[dict[str, Any]], settings: Settings, feature: str) -> tuple[str, str]:
    """The mode the triggers alone give (no override): the fallback mode while `fallback` fires."""
    fallback = next((r for r in rows if (r["trigger"], r["scope"]) == ("fallback", "all")), None)
    if fallback is not None and fallback["state"] == "firing":
        return settings.feature(feature).fallback_mode, f"fallback: {fallback['reason']}"
    return "normal", ""


def mode_of(conn: Connection, settings: Settings, feature: str, now: datetime) -> FeatureMode | None:
    """The feature's mode now, or None when neither the store nor the config knows the feature."""
    if not is_feature_name(feature):
        return None
    row = q.feature_row(conn, feature)
    if row is None and feature not in settings.features:
        return None
    rows = q.trigger_state_rows(conn, feature) if row is not None else []
    triggers = [
        {
            "trigger": r["trigger"],
            "scope": r["scope"],
            "state": r["state"],
            "reason": r["reason"],
            "since": format_ts_or_none(r["since"]),
        }
        for r in sorted(
            (r for r in rows if r["state"] in ACTIVE_STATES),
            key=lambda r: (_STATE_ORDER[r["state"]], r["trigger"], r["scope"] != "all", r["scope"]),
        )
    ]
    override = q.active_override(conn, feature, now) if row is not None else None
    if override is not None:
        return FeatureMode(
            feature,
            override["mode"],
            f"manual override: {override['reason']}",
            override["set_at"],
            "override",
            triggers,
        )
    if row is None:
        return FeatureMode(feature, "normal", "no outputs yet", None, "default", triggers)
    mode, reason, since = row["mode"], row["mode_reason"], row["mode_since"]
    if reason.startswith("manual override:"):  # the override ended after the last cycle stored it
        mode, reason = trigger_mode(rows, settings, feature)
        reason = reason or "the manual override has ended"
        since = _override_end(conn, feature, now) or since
    if not reason and mode == "normal":
        reason = "no trigger moves the mode"
    has_cycle = conn.execute(
        select(cycles.c.pk).where(cycles.c.feature == feature, cycles.c.status == "done").limit(1)
    ).first()
    return FeatureMode(feature, mode, reason, since, "cycle" if has_cycle else "default", triggers)


def _override_end(conn: Connection, feature: str, now: datetime) -> datetime | None:
    """When the feature's latest override stopped applying (cleared, or its `until` passed)."""
    query = (
        select(mode_overrides.c.until, mode_overrides.c.cleared_at)
        .where(mode_overrides.c.feature == feature, mode_overrides.c.set_at <= now)
        .order_by(mode_overrides.c.set_at.desc(), mode_overrides.c.pk.desc())
        .limit(1)
    )
    latest = conn.execute(query).first()
    if latest is None:
        return None
    ends = [moment for moment in latest if moment is not None and moment <= now]
    return min(ends) if ends else None
