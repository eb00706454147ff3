"""The launch brief: one page on what a feature is for, who decides, and what happens when it degrades.

`collect_brief` reads the feature's settings (and, when the store knows the feature, its
current mode, resolved by `monitor.decide.modes.resolve_mode`, and baseline); `format_brief`
prints it. `aiqm brief` and the weekly digest use it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.decide.modes import resolve_mode
from monitor.errors import NotFound
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq

UNOWNED = ("", "unassigned")


def missing_brief_items(settings: Settings, name: str) -> list[str]:
    """What a feature in production must not run without: an owner and a fallback behaviour."""
    feature = settings.feature(name)
    missing = []
    if feature.owner.strip() in UNOWNED:
        missing.append("owner")
    if not feature.fallback_behaviour.strip():
        missing.append("fallback_behaviour")
    return missing


def collect_brief(
    settings: Settings, name: str, engine: Engine | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The brief's facts; NotFound when neither the config nor the store knows the feature."""
    rows = fq.ModeRows(None)
    baseline: dict[str, Any] | None = None
    if engine is not None:
        with engine.connect() as conn:
            rows = fq.mode_rows(conn, name, now or datetime.now(UTC))
            if rows.stored is not None:
                baseline = q.active_baseline(conn, name)
    if name not in settings.features and rows.stored is None:
        known = ", ".join(sorted(settings.features)) or "none"
        raise NotFound(f"no feature {name!r} in the config or the store (features in the config: {known})")
    feature = settings.feature(name)
    mode = None
    if rows.stored is not None:  # as `aiqm status` resolves it: an ended override no longer counts
        resolved = resolve_mode(rows, feature.fallback_mode)
        mode = resolved.mode + (f" ({resolved.reason})" if resolved.reason else "")
    return {
        "feature": name,
        "owner": feature.owner,
        "decision_owner": feature.decision_owner or feature.owner,
        "user_role": feature.user_role,
        "allowed_actions": list(feature.allowed_actions),
        "blocked_actions": list(feature.blocked_actions),
        "review_path": feature.review_path,
        "fallback_behaviour": feature.fallback_behaviour,
        "fallback_mode": feature.fallback_mode,
        "known_limitations": list(feature.known_limitations),
        "schedule": feature.schedule,
        "window_days": feature.window_days,
        "sample_size": feature.sample_size,
        "max_sample_size": feature.max_sample_size,
        "confidence": feature.confidence,
        "retrain_drop": feature.retrain_drop,
        "fallback_drop": feature.fallback_drop,
        "mode": mode,
        "baseline": None
        if baseline is None
        else {
            "version": baseline["version"],
            "pass_rate": baseline["pass_rate"],
            "pass_rate_low": baseline["pass_rate_low"],
            "pass_rate_high": baseline["pass_rate_high"],
            "labelled": baseline["labelled"],
        },
        "missing": missing_brief_items(settings, name),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_brief(brief: dict[str, Any]) -> str:
    """One page of plain text."""
    unset = "(not set)"

    def items(values: list[str]) -> list[str]:
        return [f"  - {value}" for value in values] or [f"  {unset}"]

    lines = [
        f"Launch brief: {brief['feature']}",
        "=" * (14 + len(brief["feature"])),
        f"Owner:            {brief['owner'] or unset}",
        f"Decision owner:   {brief['decision_owner'] or unset}",
        f"User role:        {brief['user_role'] or unset}",
        "Allowed actions:",
        *items(brief["allowed_actions"]),
        "Blocked actions:",
        *items(brief["blocked_actions"]),
        f"Review path:      {brief['review_path'] or unset}",
        f"Fallback:         {brief['fallback_behaviour'] or unset} "
        f"(mode when it fires: {brief['fallback_mode']})",
        "Known limitations:",
        *items(brief["known_limitations"]),
        "",
        f"Schedule:         {brief['schedule']} (UTC), window {brief['window_days']:g} days",
        f"Sample size:      {brief['sample_size']} per cycle (up to {brief['max_sample_size']})",
        f"Thresholds:       retrain at a drop of {100 * brief['retrain_drop']:.1f} points, fallback at "
        f"{100 * brief['fallback_drop']:.1f} points below the baseline "
        f"({100 * brief['confidence']:g}% intervals)",
    ]
    if brief["mode"] is not None:
        lines.append(f"Current mode:     {brief['mode']}")
    baseline = brief["baseline"]
    if baseline is not None:
        lines.append(
            f"Baseline:         v{baseline['version']} {_pct(baseline['pass_rate'])} "
            f"[{_pct(baseline['pass_rate_low'])}, {_pct(baseline['pass_rate_high'])}] "
            f"from {baseline['labelled']} labels"
        )
    for item in brief["missing"]:
        lines.append(f"warning: no {item} set (features.{brief['feature']}.{item} in the config)")
    return "\n".join(lines)
