"""A feature's mode as the app sees it over HTTP (`/v1/features`, OFREP).

The mode is resolved by `monitor.decide.modes.resolve_mode` from what the store holds
(`monitor.store.feature_queries.mode_rows`), as `aiqm status`, the brief, the exporter and the
cycle resolve it; this module only shapes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.config import Settings
from monitor.decide.modes import ResolvedMode, Source, resolve_mode
from monitor.formats import format_ts_or_none, is_feature_name
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq

__all__ = ["ACTIVE_STATES", "FeatureMode", "known_features", "mode_of"]

ACTIVE_STATES = ("firing", "pending")
_STATE_ORDER = {"firing": 0, "pending": 1}
QUIET = "no trigger moves the mode"
"""The reason the app is given for `normal` when nothing else is said."""


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


def mode_of(conn: Connection, settings: Settings, feature: str, now: datetime) -> FeatureMode | None:
    """The feature's mode now, or None when neither the store nor the config knows the feature."""
    if not is_feature_name(feature):
        return None
    rows = fq.mode_rows(conn, feature, now)
    if rows.stored is None and feature not in settings.features:
        return None
    return feature_mode(feature, resolve_mode(rows, settings.feature(feature).fallback_mode), rows.triggers)


def feature_mode(feature: str, resolved: ResolvedMode, triggers: list[q.TriggerStateRow]) -> FeatureMode:
    """The answer: the resolved mode with the pending and firing triggers, the loudest first."""
    active = sorted(
        (t for t in triggers if t.state in ACTIVE_STATES),
        key=lambda t: (_STATE_ORDER[t.state], t.trigger, t.scope != "all", t.scope),
    )
    listed = [
        {
            "trigger": t.trigger,
            "scope": t.scope,
            "state": t.state,
            "reason": t.reason,
            "since": format_ts_or_none(t.since),
        }
        for t in active
    ]
    reason = resolved.reason or (QUIET if resolved.mode == "normal" else "")
    return FeatureMode(feature, resolved.mode, reason, resolved.since, resolved.source, listed)
