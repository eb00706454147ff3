"""What `aiqm status` shows: each feature's mode, triggers, last metrics, baseline and counts.

`collect_status` reads the store (it never recomputes a cycle) and returns plain JSON-ready
data; `format_status` turns that into text for a terminal. The mode is resolved by
`monitor.decide.modes.resolve_mode`, as the API, the brief and the exporter resolve it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.config import Settings
from monitor.decide.modes import resolve_mode
from monitor.reporting.label_budget import label_budget
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.metric_queries import undelivered
from monitor.store.reads import FeatureCounts, feature_counts

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
OVERRIDE_COLUMNS = ("mode", "reason", "until", "set_at", "set_by")
NO_CYCLES = {"done": 0, "running": 0, "restatements": 0}


def _iso(moment: datetime | None) -> str | None:
    """`aiqm status --json` has always written times with a `+00:00` offset, where
    `monitor.formats.format_ts` writes `Z`; scripts read it, so it stays."""
    return moment.isoformat() if moment is not None else None


def collect_status(engine: Engine, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Every feature the store knows (and every feature the config names) with what it is doing."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        counts = {item.name: item for item in feature_counts(conn)}
        cycles = fq.cycle_counts(conn)
        features = {
            name: _feature_status(
                conn, settings, name, counts.get(name), cycles.get(name, dict(NO_CYCLES)), now
            )
            for name in sorted({*counts, *settings.features})
        }
        waiting = {key: n for key, n in undelivered(conn).items() if key[2] == "retrying"}
    return {
        "generated_at": now.isoformat(),
        "features": features,
        "warnings": _warnings(settings, features, waiting),
    }


def _feature_status(
    conn: Connection,
    settings: Settings,
    name: str,
    item: FeatureCounts | None,
    cycles: dict[str, int],
    now: datetime,
) -> dict[str, Any]:
    feature = settings.feature(name)
    rows = fq.mode_rows(conn, name, now)
    mode = resolve_mode(rows, feature.fallback_mode)
    override = fq.as_json(asdict(rows.override), *OVERRIDE_COLUMNS) if rows.override else None
    return {
        "mode": mode.mode,
        "mode_reason": mode.reason,
        "mode_since": _iso(mode.since),
        "override": override,
        "owner": feature.owner,
        "decision_owner": feature.decision_owner or feature.owner,
        "outputs": item.outputs if item else 0,
        "first_output": _iso(item.first_output_ts) if item else None,
        "last_output": _iso(item.last_output_ts) if item else None,
        "labels": {
            "human": item.human_labels if item else 0,
            "judge": item.judge_labels if item else 0,
        },
        "cycles": cycles,
        "last_cycle": _last_cycle(fq.last_cycle(conn, name), feature.confidence),
        "triggers": _triggers(rows.triggers),
        "baseline": fq.as_json(q.active_baseline(conn, name), *BASELINE_COLUMNS),
        "proposals": [fq.as_json(p, *BASELINE_COLUMNS) for p in fq.open_proposals(conn, name)],
    }


def _triggers(rows: list[q.TriggerStateRow]) -> list[dict[str, Any]]:
    """The triggers not `ok`, the loudest first."""
    states = sorted(
        (row for row in rows if row.state != "ok"),
        key=lambda r: (STATE_ORDER.get(r.state, 9), r.trigger, r.scope != "all", r.scope),
    )
    return [
        {
            "trigger": s.trigger,
            "scope": s.scope,
            "state": s.state,
            "since": _iso(s.since),
            "reason": s.reason,
            "evidence": s.evidence,
        }
        for s in states
    ]


def _warnings(
    settings: Settings, features: dict[str, Any], waiting: dict[tuple[str, str, str], int]
) -> list[str]:
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
    return warnings


def _last_cycle(row: dict[str, Any] | None, confidence: float) -> dict[str, Any] | None:
    data = fq.as_json(row, *CYCLE_COLUMNS)
    if data is not None and row is not None:
        data["confidence"] = confidence
        budget = label_budget(row.get("result"))
        data["labels"] = budget.to_json() if budget else None
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
        lines += _feature_lines(name, item)
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _feature_lines(name: str, item: dict[str, Any]) -> list[str]:
    since = f" since {_day(item['mode_since'])}" if item["mode_since"] else ""
    lines = [f"{name}  mode={item['mode'].upper()}{since}  owner={item['owner']}"]
    if item["mode_reason"]:
        lines.append(f"  why: {item['mode_reason']}")
    override = item["override"]
    if override is not None:
        until = f" until {_day(override['until'])}" if override["until"] else ""
        lines.append(f"  override: {override['mode']}{until} (set {_day(override['set_at'])})")
    lines.append(_cycle_line(item["last_cycle"]))
    lines += _baseline_lines(name, item["baseline"], item["proposals"])
    lines += _trigger_lines(item["triggers"])
    cycles = item["cycles"]
    running = f", {cycles['running']} unfinished" if cycles["running"] else ""
    lines.append(
        f"  outputs {item['outputs']:,} ({_day(item['first_output'])} .. {_day(item['last_output'])}), "
        f"labels human {item['labels']['human']:,} judge {item['labels']['judge']:,}, "
        f"cycles {cycles['done']}{running}, restatements {cycles['restatements']}"
    )
    return lines


def _cycle_line(last: dict[str, Any] | None) -> str:
    if last is None:
        return "  last cycle: none yet (aiqm cycle runs one)"
    interval = (
        f" [{_pct(last['pass_rate_low'])}, {_pct(last['pass_rate_high'])}]"
        f" ({100 * last['confidence']:.0f}% interval)"
        if last["pass_rate"] is not None
        else " (nothing labelled)"
    )
    restated = f", restated {last['restatements']}x" if last["restatements"] else ""
    budget = last.get("labels")
    if budget and budget["judges_saved"]:
        saved = ", ".join(f"judge {name} saved {value:.0f}" for name, value in budget["judges_saved"].items())
        restated += (
            f"\n  labels: this answer needed {budget['human']} human labels, "
            f"worth {budget['worth']:.0f} with the judges ({saved})"
        )
    return (
        f"  last cycle {_day(last['at'])}: pass rate {_pct(last['pass_rate'])}{interval}, "
        f"{last['labelled']} labelled of {last['sampled']} sampled from {last['outputs']:,} outputs"
        f"{restated}"
    )


def _baseline_lines(name: str, baseline: dict[str, Any] | None, proposals: list[dict[str, Any]]) -> list[str]:
    if baseline is None:
        lines = ["  baseline: none yet (the first cycles with labels make the default one)"]
    else:
        lines = [
            f"  baseline v{baseline['version']} ({baseline['kind']}): {_pct(baseline['pass_rate'])} "
            f"[{_pct(baseline['pass_rate_low'])}, {_pct(baseline['pass_rate_high'])}] "
            f"from {baseline['labelled']} labels, {_day(baseline['window_start'])} .. "
            f"{_day(baseline['window_end'])}"
        ]
    for proposal in proposals:
        lines.append(
            f"  proposed baseline v{proposal['version']} ({_day(proposal['window_start'])} .. "
            f"{_day(proposal['window_end'])}): {proposal['reason']}"
        )
        lines.append(f"    adopt it: aiqm baseline accept --feature {name}")
    return lines


def _trigger_lines(triggers: list[dict[str, Any]]) -> list[str]:
    if not triggers:
        return ["  triggers: all ok"]
    lines = ["  triggers:"]
    for t in triggers:
        lines.append(f"    {t['state']:8s} {t['trigger']:8s} {t['scope']}  (since {_day(t['since'])})")
        lines.append(f"             {t['reason']}")
    return lines


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
