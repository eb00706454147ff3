"""What `aiqm status` shows: each feature with its mode, counts, triggers and last metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.store.reads import feature_counts


def collect_status(engine: Engine, settings: Settings) -> dict[str, Any]:
    with engine.connect() as conn:
        counts = feature_counts(conn)
    result: dict[str, Any] = {"features": {}}
    for item in counts:
        feature = settings.feature(item.name)
        result["features"][item.name] = {
            "mode": item.mode,
            "mode_reason": item.mode_reason,
            "owner": feature.owner,
            "outputs": item.outputs,
            "first_output": item.first_output_ts.isoformat() if item.first_output_ts else None,
            "last_output": item.last_output_ts.isoformat() if item.last_output_ts else None,
            "labels": {"human": item.human_labels, "judge": item.judge_labels},
        }
    return result


def format_status(report: dict[str, Any]) -> str:
    features = report["features"]
    if not features:
        return "no features yet: ingest some outputs first (aiqm ingest FILE.jsonl)"
    lines = []
    for name, item in features.items():
        lines.append(f"{name}  mode={item['mode']}  owner={item['owner']}")
        lines.append(f"  outputs {item['outputs']:,}  ({item['first_output']} .. {item['last_output']})")
        lines.append(f"  labels  human {item['labels']['human']:,}  judge {item['labels']['judge']:,}")
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
