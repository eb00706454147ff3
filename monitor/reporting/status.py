"""What `aiqm status` shows: each feature's mode, triggers, last metrics, baseline and counts.

`collect_status` reads the store (it never recomputes a cycle) and returns plain JSON-ready
data; `format_status` turns that into text for a terminal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.metric_queries import undelivered
from monitor.store.reads import feature_counts

UNOWNED = ("", "unassigned")
STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}
CYCLE_COLUMNS = (
    "at",
    "window_start",
    "window_end",
    "outputs",
    "sampled",
    "labelled",
    "pass_rate",
    "pass_rate_low",
    "pass_rate_high",
    "restatements",
    "restated_at",
    "finished_at",
)
BASELINE_COLUMNS = (
    "version",
    "kind",
    "status",
    "pass_rate",
    "pass_rate_low",
    "pass_rate_high",
    "labelled",
    "window_start",
    "window_end",
    "reason",
    "created_at",
)


WAITING = {"webhook": "trigger notification(s)", "digest": "weekly digest(s)"}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def collect_status(engine: Engine, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Every feature the store knows (and every feature the config names) with what it is doing."""
    now = now or datetime.now(UTC)
    features: dict[str, Any] = {}
    with engine.connect() as conn:
        counts = {item.name: item for item in feature_counts(conn)}
        cycles = fq.cycle_counts(conn)
        for name in sorted({*counts, *settings.features}):
            feature = settings.feature(name)
            item = counts.get(name)
            override = q.active_override(conn, name, now) if item else None
            mode = item.mode if item else "normal"
            mode_reason = item.mode_reason if item else "no outputs yet"
            rows = q.trigger_state_rows(conn, name)
            if override is not None:
                mode, mode_reason = override["mode"], f"manual override: {override['reason']}"
            elif mode_reason.startswith("manual override:"):
                # The override ended after the last cycle stored it: the triggers decide again.
                fallback = next((r for r in rows if (r["trigger"], r["scope"]) == ("fallback", "all")), None)
                if fallback is not None and fallback["state"] == "firing":
                    mode, mode_reason = feature.fallback_mode, f"fallback: {fallback['reason']}"
                else:
                    mode, mode_reason = "normal", "the manual override has ended"
            states = sorted(
                (row for row in rows if row["state"] != "ok"),
                key=lambda r: (STATE_ORDER.get(r["state"], 9), r["trigger"], r["scope"] != "all", r["scope"]),
            )
            row = q.feature_row(conn, name) if item else None
            features[name] = {
                "mode": mode,
                "mode_reason": mode_reason,
                "mode_since": _iso(row["mode_since"]) if row else None,
                "override": fq.as_json(override, "mode", "reason", "until", "set_at", "set_by"),
                "owner": feature.owner,
                "decision_owner": feature.decision_owner or feature.owner,
                "outputs": item.outputs if item else 0,
                "first_output": _iso(item.first_output_ts) if item else None,
                "last_output": _iso(item.last_output_ts) if item else None,
                "labels": {
                    "human": item.human_labels if item else 0,
                    "judge": item.judge_labels if item else 0,
                },
                "cycles": cycles.get(name, {"done": 0, "running": 0, "restatements": 0}),
                "last_cycle": _last_cycle(fq.last_cycle(conn, name), feature.confidence),
                "triggers": [
                    {
                        "trigger": s["trigger"],
                        "scope": s["scope"],
                        "state": s["state"],
                        "since": _iso(s["since"]),
                        "reason": s["reason"],
                        "evidence": s["evidence"],
                    }
                    for s in states
                ],
                "baseline": fq.as_json(q.active_baseline(conn, name), *BASELINE_COLUMNS),
                "proposals": [fq.as_json(p, *BASELINE_COLUMNS) for p in fq.open_proposals(conn, name)],
            }
        waiting = {key: n for key, n in undelivered(conn).items() if key[2] == "retrying"}
    warnings = [
        f"{name}: {count} {WAITING[kind]} not delivered yet, waiting for a later try; the receiver "
        "fails (the daemon's log says why)"
        for (name, kind, _state), count in sorted(waiting.items())
    ]
    warnings += [
        f"{name} has no owner: nobody is told when it degrades; set features.{name}.owner in the config"
        for name in features
        if settings.feature(name).owner.strip() in UNOWNED
    ]
    warnings += [
        f"{name} runs without a fallback behaviour: nobody knows what users get when it is switched "
        f"off; set features.{name}.fallback_behaviour in the config (see aiqm brief --feature {name})"
        for name, item in features.items()
        if item["outputs"] and not settings.feature(name).fallback_behaviour.strip()
    ]
    return {"generated_at": now.isoformat(), "features": features, "warnings": warnings}


def _last_cycle(row: dict[str, Any] | None, confidence: float) -> dict[str, Any] | None:
    data = fq.as_json(row, *CYCLE_COLUMNS)
    if data is not None:
        data["confidence"] = confidence
    return data


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _day(text: str | None) -> str:
    return "?" if text is None else text[:16].replace("T", " ")


def format_status(report: dict[str, Any]) -> str:
    features = report["features"]
    if not features:
        return "no features yet: ingest some outputs first (aiqm ingest FILE.jsonl)"
    lines: list[str] = []
    for name, item in features.items():
        if lines:
            lines.append("")
        since = f" since {_day(item['mode_since'])}" if item["mode_since"] else ""
        lines.append(f"{name}  mode={item['mode'].upper()}{since}  owner={item['owner']}")
        if item["mode_reason"]:
            lines.append(f"  why: {item['mode_reason']}")
        override = item["override"]
        if override is not None:
            until = f" until {_day(override['until'])}" if override["until"] else ""
            lines.append(f"  override: {override['mode']}{until} (set {_day(override['set_at'])})")
        last = item["last_cycle"]
        if last is None:
            lines.append("  last cycle: none yet (aiqm cycle runs one)")
        else:
            interval = (
                f" [{_pct(last['pass_rate_low'])}, {_pct(last['pass_rate_high'])}]"
                f" ({100 * last['confidence']:.0f}% interval)"
                if last["pass_rate"] is not None
                else " (nothing labelled)"
            )
            restated = f", restated {last['restatements']}x" if last["restatements"] else ""
            lines.append(
                f"  last cycle {_day(last['at'])}: pass rate {_pct(last['pass_rate'])}{interval}, "
                f"{last['labelled']} labelled of {last['sampled']} sampled from {last['outputs']:,} outputs"
                f"{restated}"
            )
        baseline = item["baseline"]
        if baseline is None:
            lines.append("  baseline: none yet (the first cycles with labels make the default one)")
        else:
            lines.append(
                f"  baseline v{baseline['version']} ({baseline['kind']}): {_pct(baseline['pass_rate'])} "
                f"[{_pct(baseline['pass_rate_low'])}, {_pct(baseline['pass_rate_high'])}] "
                f"from {baseline['labelled']} labels, {_day(baseline['window_start'])} .. "
                f"{_day(baseline['window_end'])}"
            )
        for proposal in item["proposals"]:
            lines.append(
                f"  proposed baseline v{proposal['version']} ({_day(proposal['window_start'])} .. "
                f"{_day(proposal['window_end'])}): {proposal['reason']}"
            )
            lines.append(f"    adopt it: aiqm baseline accept --feature {name}")
        if item["triggers"]:
            lines.append("  triggers:")
            for t in item["triggers"]:
                lines.append(
                    f"    {t['state']:8s} {t['trigger']:8s} {t['scope']}  (since {_day(t['since'])})"
                )
                lines.append(f"             {t['reason']}")
        else:
            lines.append("  triggers: all ok")
        cycles = item["cycles"]
        running = f", {cycles['running']} unfinished" if cycles["running"] else ""
        lines.append(
            f"  outputs {item['outputs']:,} ({_day(item['first_output'])} .. {_day(item['last_output'])}), "
            f"labels human {item['labels']['human']:,} judge {item['labels']['judge']:,}, "
            f"cycles {cycles['done']}{running}, restatements {cycles['restatements']}"
        )
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def format_backtest(result: dict[str, Any]) -> str:
    """A line per cycle: time, counts, pass rate with its interval, mode and alerts."""
    lines = []
    for feature, data in result["features"].items():
        lines.append(feature)
        for cycle in data["cycles"]:
            rate = (
                "   n/a          "
                if cycle["pass_rate"] is None
                else (
                    f"{cycle['pass_rate']:.3f} [{cycle['pass_rate_low']:.3f}, {cycle['pass_rate_high']:.3f}]"
                )
            )
            alerts = ", ".join(f"{a['trigger']}[{a['scope']}]={a['state']}" for a in cycle["alerts"])
            lines.append(
                f"  {cycle['at']}  outputs {cycle['outputs']:6d}  sampled {cycle['sampled']:4d}  "
                f"labelled {cycle['labelled']:4d}  pass {rate}  {cycle['mode']:8s} {alerts}"
            )
    return "\n".join(lines)
