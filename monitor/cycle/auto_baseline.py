"""The baselines a cycle makes by itself, and the numbers every baseline is made of.

The default baseline (CONTRACT 5) is the pass rate over the first `baseline_cycles` cycles that
had labels; a new model or config version in the window proposes a new baseline, never adopted
silently. `baseline_values_of` computes a baseline's numbers from labelled sampled items, for
these and for the baselines set by hand (`monitor.cycle.baselines`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.config import FeatureSettings
from monitor.cycle.measure import labelled_items
from monitor.cycle.result import DoneCycle
from monitor.decide.quality import LabelledItem
from monitor.decide.triggers import Baseline
from monitor.stats import weighted_pass_rate
from monitor.store import cycle_queries as q


def baseline_values(
    conn: Connection, feature: str, cycle_ats: Sequence[datetime], confidence: float
) -> dict[str, Any] | None:
    """Pass rate (overall and per segment value) of the labelled samples of these cycles."""
    items = [item for at in cycle_ats for item in labelled_items(q.sample_of(conn, feature, at))]
    return baseline_values_of(items, confidence)


def baseline_values_of(items: Sequence[LabelledItem], confidence: float) -> dict[str, Any] | None:
    """A baseline's numbers from sampled items (None when no human labelled any of them);
    `aiqm baseline set` uses it for the items of a time range."""
    humans = [item for item in items if item.human is not None]
    if not humans:
        return None
    overall = weighted_pass_rate(
        [float(bool(i.human)) for i in humans], [i.inclusion_prob for i in humans], None, confidence
    )
    segments: dict[str, list[float]] = {}
    for scope in sorted({f"segment:{k}={v}" for i in humans for k, v in i.segment.items()}):
        key, _, value = scope.removeprefix("segment:").partition("=")
        members = [i for i in humans if i.segment.get(key) == value]
        estimate = weighted_pass_rate(
            [float(bool(i.human)) for i in members], [i.inclusion_prob for i in members], None, confidence
        )
        segments[scope] = [estimate.value, estimate.n]
    return {
        "pass_rate": overall.value,
        "pass_rate_low": overall.low,
        "pass_rate_high": overall.high,
        "labelled": len(humans),
        "segments": {"n_eff": overall.n, "scopes": segments, "actions": _action_table(humans)},
    }


def _action_table(items: Sequence[LabelledItem]) -> dict[str, list[float]]:
    """Human passes and labels per user action: [passes, labels]."""
    table: dict[str, list[float]] = {}
    for item in items:
        entry = table.setdefault(item.action, [0.0, 0.0])
        entry[0] += float(bool(item.human))
        entry[1] += 1.0
    return table


def baseline_of(row: Mapping[str, Any]) -> Baseline:
    """What the triggers compare with, from a row of `baselines`."""
    segments = row["segments"] or {}
    scopes = {scope: (float(v[0]), float(v[1])) for scope, v in segments.get("scopes", {}).items()}
    return Baseline(
        version=int(row["version"]),
        pass_rate=float(row["pass_rate"]),
        n_eff=float(segments.get("n_eff", row["labelled"])),
        segments=scopes,
    )


def adopt_default_baseline(
    conn: Connection, feature: str, settings: FeatureSettings, cycles: Sequence[DoneCycle], now: datetime
) -> dict[str, Any] | None:
    """CONTRACT 5: the pass rate over the first `baseline_cycles` cycles that had labels."""
    labelled = [c for c in cycles if c.result.overall is not None]
    if len(labelled) < settings.baseline_cycles:
        return None
    chosen = labelled[: settings.baseline_cycles]
    values = baseline_values(conn, feature, [c.at for c in chosen], settings.confidence)
    if values is None:
        return None
    values.update(
        {
            "feature": feature,
            "kind": "auto",
            "status": "active",
            "window_start": chosen[0].window_start,
            "window_end": chosen[-1].window_end,
            "reason": f"default: the first {settings.baseline_cycles} cycles that had labels",
            "created_at": now,
        }
    )
    q.add_baseline(conn, values)
    return q.active_baseline(conn, feature)


def _version_changes(
    conn: Connection, feature: str, baseline_row: Mapping[str, Any], start: datetime, end: datetime
) -> list[str]:
    """`model_version a -> b` and `config_version ...` where [start, end)'s most common version
    differs from the baseline window's."""
    before = q.window_versions(conn, feature, baseline_row["window_start"], baseline_row["window_end"])
    current = q.window_versions(conn, feature, start, end)
    changes = []
    for column in ("model_version", "config_version"):
        old = max(before[column], key=before[column].__getitem__) if before[column] else None
        new = max(current[column], key=current[column].__getitem__) if current[column] else None
        if new is not None and new != old:
            changes.append(f"{column} {old} -> {new}")
    return changes


def propose_baseline(
    conn: Connection,
    feature: str,
    baseline_row: Mapping[str, Any],
    start: datetime,
    end: datetime,
    now: datetime,
) -> None:
    """A new model or config version proposes a new baseline; it is never adopted silently."""
    changes = _version_changes(conn, feature, baseline_row, start, end)
    if not changes:
        return
    existing = [b for b in q.baseline_history(conn, feature) if b["status"] == "proposed"]
    reason = (
        "proposed after a version change: "
        + ", ".join(changes)
        + "; adopt it with `aiqm baseline accept`, or pin one with `aiqm baseline set`"
    )
    if existing and existing[-1]["reason"] == reason:  # already proposed: keep its window
        return
    q.add_baseline(
        conn,
        {
            "feature": feature,
            "kind": "proposed",
            "status": "proposed",
            "window_start": start,
            "window_end": end,
            "pass_rate": None,
            "pass_rate_low": None,
            "pass_rate_high": None,
            "labelled": 0,
            "segments": {},
            "reason": reason,
            "created_at": now,
        },
    )
