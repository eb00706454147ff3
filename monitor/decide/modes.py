"""A feature's mode: the one rule every reader and the cycle apply.

An override in force wins. Otherwise the mode is the one the triggers gave, as the features
row stores it -- unless an override set that stored mode and has ended since (cleared, or its
`until` passed): then the triggers decide again, straight from their stored states. Only the
`fallback` trigger at scope `all` moves the mode: while it fires, the feature is in its
`fallback_mode`.

Pure: the facts come in (read from the store by `monitor.store.feature_queries.mode_rows`, or
built by hand as `Facts`), nothing is read here. Whether the stored mode came from an override
is a stored fact (`features.mode_by_override`), never guessed from the reason's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "ENDED",
    "NO_OUTPUTS",
    "Facts",
    "ModeFacts",
    "Override",
    "OverrideLike",
    "ResolvedMode",
    "Source",
    "StoredMode",
    "StoredModeLike",
    "Trigger",
    "TriggerLike",
    "override_reason",
    "resolve_mode",
    "trigger_mode",
]

Source = Literal["default", "cycle", "override"]
"""Where the mode comes from: a person (`override`), the triggers of a cycle (`cycle`), or no
cycle has run yet (`default`)."""

NO_OUTPUTS = "no outputs yet"
ENDED = "the manual override has ended"


class OverrideLike(Protocol):
    """The override in force: the mode a person set, why, and when (None: not known to the reader)."""

    @property
    def mode(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def set_at(self) -> datetime | None: ...


class TriggerLike(Protocol):
    """A trigger's stored state."""

    @property
    def trigger(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str: ...


class StoredModeLike(Protocol):
    """The mode the features row holds: what the latest cycle or override wrote."""

    @property
    def mode(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def since(self) -> datetime | None: ...
    @property
    def by_override(self) -> bool:
        """True when an override wrote this mode (it holds only while that override lasts)."""
        ...


class ModeFacts(Protocol):
    """Everything the rule reads about one feature."""

    @property
    def override(self) -> OverrideLike | None:
        """The override in force now, if any."""
        ...

    @property
    def stored(self) -> StoredModeLike | None:
        """The stored mode; None when nothing stored holds: the store has no row for the feature
        (no outputs yet), or a cycle is deciding the mode afresh."""
        ...

    @property
    def triggers(self) -> Sequence[TriggerLike]: ...

    @property
    def override_ended_at(self) -> datetime | None:
        """When the feature's latest override stopped applying (None: none ended)."""
        ...

    @property
    def has_cycle(self) -> bool:
        """A cycle has finished for the feature (or is deciding its mode now)."""
        ...


@dataclass(frozen=True)
class Override:
    mode: str
    reason: str = ""
    set_at: datetime | None = None


@dataclass(frozen=True)
class Trigger:
    trigger: str
    scope: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class StoredMode:
    mode: str
    reason: str = ""
    since: datetime | None = None
    by_override: bool = False


@dataclass(frozen=True)
class Facts:
    """`ModeFacts` built by hand (the cycle, the exporter, tests)."""

    override: OverrideLike | None = None
    stored: StoredModeLike | None = None
    triggers: Sequence[TriggerLike] = ()
    override_ended_at: datetime | None = None
    has_cycle: bool = False


@dataclass(frozen=True)
class ResolvedMode:
    mode: str
    reason: str
    """Why; empty when the mode is `normal` because no trigger moves it."""
    since: datetime | None
    source: Source

    @property
    def by_override(self) -> bool:
        return self.source == "override"


def override_reason(reason: str) -> str:
    """The mode's reason while an override sets it."""
    return f"manual override: {reason}"


def trigger_mode(triggers: Iterable[TriggerLike], fallback_mode: str) -> tuple[str, str]:
    """The mode and reason the triggers alone give: `fallback_mode` while `fallback` fires."""
    for t in triggers:
        if (t.trigger, t.scope) == ("fallback", "all") and t.state == "firing":
            return fallback_mode, f"fallback: {t.reason}"
    return "normal", ""


def resolve_mode(facts: ModeFacts, fallback_mode: str) -> ResolvedMode:
    """The feature's mode, why, since when, and where it comes from (see the module's doc)."""
    override = facts.override
    if override is not None:
        return ResolvedMode(override.mode, override_reason(override.reason), override.set_at, "override")
    source: Source = "cycle" if facts.has_cycle else "default"
    stored = facts.stored
    if stored is not None and not stored.by_override:
        return ResolvedMode(stored.mode, stored.reason, stored.since, source)
    mode, reason = trigger_mode(facts.triggers, fallback_mode)
    if stored is None:  # no row yet, or the cycle deciding: the triggers' own mode
        return ResolvedMode(mode, reason or ("" if facts.has_cycle else NO_OUTPUTS), None, source)
    return ResolvedMode(mode, reason or ENDED, facts.override_ended_at or stored.since, source)
