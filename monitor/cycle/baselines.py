"""Baselines set by hand: pin one from a time range, adopt a cycle's proposal, list the history.

A baseline is versioned: a new active one supersedes the previous (which stays in the history
as `superseded`). Its numbers come from the labelled review samples, exactly as the default
baseline's do (`monitor.cycle.auto_baseline.baseline_values_of`): here from every sampled output whose `ts`
lies in the chosen range. The triggers read only the cycles after the baseline's window, and
the drift tests compare with the outputs of that window.

Proposals are made by the cycle after a change of model or config version; they carry no
numbers until someone accepts one, and none is ever adopted silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.config import Settings
from monitor.cycle.auto_baseline import baseline_values_of
from monitor.cycle.measure import labelled_items
from monitor.errors import InputError, NotFound
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq


def _check_feature(conn: Connection, feature: str) -> None:
    if q.feature_row(conn, feature) is None:
        raise NotFound(f"no feature {feature!r} in the store")


def values_in_range(
    conn: Connection, feature: str, start: datetime, end: datetime, confidence: float
) -> dict[str, Any] | None:
    """A baseline's numbers from the labelled sampled outputs whose `ts` is in [start, end)."""
    items = labelled_items(fq.sampled_in_range(conn, feature, start, end))
    return baseline_values_of(items, confidence)


def _pin(
    conn: Connection,
    settings: Settings,
    feature: str,
    start: datetime,
    end: datetime,
    now: datetime,
    kind: str,
    reason: str,
    field: str = "--from",
) -> int:
    values = values_in_range(conn, feature, start, end, settings.feature(feature).confidence)
    if values is None:
        raise InputError(
            f"no human-labelled review sample of {feature!r} has its output between "
            f"{start.isoformat()} and {end.isoformat()}: nothing to compute a baseline from",
            field=field,
        )
    values.update(
        {
            "feature": feature,
            "kind": kind,
            "status": "active",
            "window_start": start,
            "window_end": end,
            "reason": reason,
            "created_at": now,
        }
    )
    return q.add_baseline(conn, values)


def pin_baseline(
    engine: Engine,
    settings: Settings,
    feature: str,
    start: datetime,
    end: datetime,
    now: datetime,
    reason: str = "",
) -> dict[str, Any]:
    """`aiqm baseline set`: a new active baseline (kind `manual`) from [start, end).

    Open proposals are dismissed: a person has decided. A cycle proposes again if the pinned
    window still runs an older version than the outputs do."""
    if start >= end:
        raise InputError("must be before --to", field="--from")
    if end > now:
        raise InputError("is in the future: a baseline is made of labels already given", field="--to")
    with engine.begin() as conn:
        _check_feature(conn, feature)
        version = _pin(
            conn, settings, feature, start, end, now, "manual", reason or "pinned by hand (aiqm baseline set)"
        )
        fq.close_proposals(conn, feature, "dismissed")
        row = fq.baseline_row(conn, feature, version)
    assert row is not None
    return row


def accept_proposal(engine: Engine, settings: Settings, feature: str, now: datetime) -> dict[str, Any]:
    """`aiqm baseline accept`: the newest proposal becomes the active baseline, its numbers
    computed from the proposal's window; the proposal stays in the history as `accepted`."""
    with engine.begin() as conn:
        _check_feature(conn, feature)
        proposals = fq.open_proposals(conn, feature)
        if not proposals:
            raise NotFound(
                f"{feature!r} has no open baseline proposal (a cycle proposes one after a model or "
                "config version change); pin one by hand with `aiqm baseline set`"
            )
        proposal = proposals[-1]
        reason = f"accepted proposal v{proposal['version']}: " + proposal["reason"].split(";")[0]
        version = _pin(
            conn,
            settings,
            feature,
            proposal["window_start"],
            proposal["window_end"],
            now,
            "accepted",
            reason,
            field="--feature",
        )
        fq.close_proposals(conn, feature, "dismissed", accepted=int(proposal["version"]))
        row = fq.baseline_row(conn, feature, version)
    assert row is not None
    return row


def baseline_list(engine: Engine, feature: str) -> list[dict[str, Any]]:
    """Every version of the feature's baseline, oldest first, proposals included."""
    with engine.connect() as conn:
        _check_feature(conn, feature)
        return q.baseline_history(conn, feature)
