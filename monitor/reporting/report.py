"""`aiqm report`: a feature's weekly digest as one self-contained HTML page, and its plain-text summary.

`collect_report` reads the store (cycles, baselines, trigger events, the week's failed human
labels with their reasons, judge agreement) and the cost of the week (`monitor.reporting.costs`);
`render_html` draws the charts with matplotlib (Agg, PNGs embedded as base64 data URIs: the
page loads nothing from anywhere) and `summary_text` is the body of the digest's email.
The week is a cycle's: the last one by default, else the last one at or before the given date.
"""

from __future__ import annotations

import base64
import html
import io
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cycle.result import CycleResult
from monitor.errors import NotFound
from monitor.reporting.brief import collect_brief, format_brief
from monitor.reporting.costs import WeekCosts, cycle_costs, format_costs
from monitor.store import cycle_queries as q
from monitor.store.report_queries import FailedExample, failed_human_labels

WORST_EXAMPLES = 10
_DRAWING = threading.Lock()
SNIPPET = 300


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def choose_cycle(cycles: Sequence[dict[str, Any]], week: date | None) -> dict[str, Any]:
    """The week's cycle: the last finished one, or the last at or before the end of `week`."""
    done = [c for c in cycles if c["status"] == "done"] or list(cycles)
    if week is not None:
        end = datetime.combine(week + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        done = [c for c in done if c["at"] < end]
    if not done:
        raise NotFound(
            "no cycle " + (f"on or before {week.isoformat()}" if week else "yet") + " for this feature"
        )
    return max(done, key=lambda c: c["at"])


def _worst_examples(
    engine: Engine, feature: str, cycle_at: datetime, confidence_signal: str
) -> list[dict[str, Any]]:
    """The failed human labels of the week's sample, least confident output first, with reasons."""
    with engine.connect() as conn:
        found = failed_human_labels(conn, feature, cycle_at)

    def confidence(example: FailedExample) -> float:
        value = (example.signals or {}).get(confidence_signal)
        return float(value) if isinstance(value, int | float) else 2.0

    found.sort(key=lambda e: (confidence(e), e.output_id))
    return [
        {
            "output_id": e.output_id,
            "reason": e.reason or "(no reason given)",
            "reviewer": e.source,
            "input": _text(e.input),
            "output": _text(e.output),
            "segment": e.segment or {},
            "confidence": (e.signals or {}).get(confidence_signal),
            "user_action": e.user_action,
        }
        for e in found[:WORST_EXAMPLES]
    ]


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else repr(value)
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def collect_report(
    engine: Engine, settings: Settings, feature: str, week: date | None = None
) -> dict[str, Any]:
    """Everything the page shows, as plain data (times stay datetimes)."""
    brief = collect_brief(settings, feature, engine)
    config = settings.feature(feature)
    with engine.connect() as conn:
        cycles = q.cycle_rows(conn, feature)
        if not cycles:
            raise NotFound(f"no cycle yet for {feature!r} (aiqm cycle runs one)")
        cycle = choose_cycle(cycles, week)
        history = [c for c in cycles if c["at"] <= cycle["at"]]
        baselines = q.baseline_history(conn, feature)
        events = [
            e for e in q.trigger_event_rows(conn, feature) if e["at"] <= cycle["at"] + timedelta(hours=1)
        ]
    active = next((b for b in baselines if b["status"] == "active" and b["created_at"] <= cycle["at"]), None)
    if active is None:
        active = next((b for b in baselines if b["status"] == "active"), None)
    costs = cycle_costs(engine, settings, feature, cycle)
    result = CycleResult.from_json(cycle["result"])
    return {
        "feature": feature,
        "cycle": cycle,
        "history": history,
        "baseline": active,
        "retrain_line": None
        if active is None or active["pass_rate"] is None
        else active["pass_rate"] - config.retrain_drop,
        "fallback_line": None
        if active is None or active["pass_rate"] is None
        else active["pass_rate"] - config.fallback_drop,
        "confidence": config.confidence,
        "segments": {scope: data.to_json() for scope, data in result.quality.items() if scope != "all"},
        "drifted": list(result.drift.drifted if result.drift is not None else ()),
        "alerts": [alert.to_json() for alert in result.alerts],
        "events": events,
        "worst": _worst_examples(engine, feature, cycle["at"], config.low_confidence_signal),
        "judges": {name: agreement.to_json() for name, agreement in result.judges.items()},
        "costs": costs,
        "brief": brief,
    }


# --------------------------------------------------------------------------- charts


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.autofmt_xdate()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, height))
    axes.grid(True, alpha=0.3)
    return figure, axes


def chart_pass_rate(report: dict[str, Any]) -> str:
    rows = [c for c in report["history"] if c["pass_rate"] is not None]
    figure, axes = _figure()
    if rows:
        at = [c["at"] for c in rows]
        axes.fill_between(
            at,
            [c["pass_rate_low"] for c in rows],
            [c["pass_rate_high"] for c in rows],
            alpha=0.25,
            label=f"{100 * report['confidence']:.0f}% interval",
        )
        axes.plot(at, [c["pass_rate"] for c in rows], marker="o", label="pass rate")
    for key, style, name in (
        ("baseline", "-", "baseline"),
        ("retrain_line", "--", "retrain"),
        ("fallback_line", ":", "fallback"),
    ):
        value = (
            report["baseline"]["pass_rate"] if key == "baseline" and report["baseline"] else report.get(key)
        )
        if isinstance(value, float):
            axes.axhline(
                value,
                linestyle=style,
                color={"baseline": "green", "retrain_line": "orange"}.get(key, "red"),
                label=f"{name} {_pct(value)}",
            )
    axes.set_ylabel("pass rate")
    axes.set_title(f"{report['feature']}: pass rate per cycle")
    axes.legend(loc="lower left", fontsize=8)
    return _png(figure)


def chart_segments(report: dict[str, Any]) -> str:
    figure, axes = _figure()
    items = sorted(report["segments"].items())
    if items:
        names = [scope.removeprefix("segment:") for scope, _ in items]
        values = [d["value"] for _, d in items]
        low = [d["value"] - d["low"] for _, d in items]
        high = [d["high"] - d["value"] for _, d in items]
        axes.bar(names, values, yerr=[low, high], capsize=4, alpha=0.8)
        axes.tick_params(axis="x", labelrotation=30)
    if report["baseline"] is not None and report["baseline"]["pass_rate"] is not None:
        axes.axhline(report["baseline"]["pass_rate"], color="green", label="baseline")
        axes.legend(fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_title("pass rate per segment this week (with intervals)")
    return _png(figure)


def chart_drift(report: dict[str, Any]) -> str:
    figure, axes = _figure()
    series: dict[str, list[tuple[datetime, float]]] = {}
    for c in report["history"]:
        for entry in CycleResult.from_json(c["result"]).drift_entries:
            if entry.effect is not None:
                series.setdefault(entry.signal, []).append((c["at"], float(entry.effect)))
    for name, points in sorted(series.items()):
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    if series:
        axes.legend(fontsize=7, ncol=2)
    axes.set_ylabel("effect size against the baseline")
    axes.set_title("drift of signals per cycle")
    return _png(figure)


def chart_triggers(report: dict[str, Any]) -> str:
    figure, axes = _figure(2.6)
    events = report["events"]
    keys = sorted({f"{e['trigger']}[{e['scope']}]" for e in events})
    colours = {"pending": "orange", "firing": "red", "resolved": "green", "ok": "grey"}
    for e in events:
        axes.scatter(
            e["at"],
            keys.index(f"{e['trigger']}[{e['scope']}]"),
            color=colours.get(e["to_state"], "blue"),
            s=40,
        )
    axes.set_yticks(range(len(keys)), keys, fontsize=7)
    if report["history"]:
        axes.set_xlim(
            report["history"][0]["at"] - timedelta(days=3), report["cycle"]["at"] + timedelta(days=3)
        )
    axes.set_title("trigger transitions (orange pending, red firing, green resolved)")
    return _png(figure)


# --------------------------------------------------------------------------- page and text


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = (
    "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"
    "img{max-width:100%}</style></head><body>"
)


def render_html(report: dict[str, Any]) -> str:
    """The whole page; nothing in it points outside it. Each section renders its own lines."""
    title = f"{report['feature']}: weekly review, cycle {report['cycle']['at']:%Y-%m-%d %H:%M} UTC"
    drawn = charts(report)
    parts = [
        *_head_section(title, report),
        *_pass_rate_section(report),
        *_chart_sections(drawn, report),
        *_worst_section(report),
        *_judges_section(report),
        *_costs_section(report),
        *_brief_section(report),
        "</body></html>",
    ]
    return "\n".join(parts)


def charts(report: dict[str, Any]) -> dict[str, str]:
    """Each chart's name and its PNG as a data URI, in the order the page shows them (the quality
    page serves the same ones). One drawing at a time: pyplot's figures are process-wide state."""
    with _DRAWING:
        return {
            "pass rate over time": chart_pass_rate(report),
            "per segment": chart_segments(report),
            "drift": chart_drift(report),
            "trigger timeline": chart_triggers(report),
        }


def _head_section(title: str, report: dict[str, Any]) -> list[str]:
    """The document's head, the title and the one-line summary."""
    return [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        _STYLE,
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(summary_text(report).splitlines()[1])}</p>",
    ]


def _pass_rate_section(report: dict[str, Any]) -> list[str]:
    """The last eight cycles' pass rates with their intervals."""
    rows = [
        (
            f"{c['at']:%Y-%m-%d}",
            _pct(c["pass_rate"]),
            f"[{_pct(c['pass_rate_low'])}, {_pct(c['pass_rate_high'])}]",
            c["labelled"],
            c["outputs"],
        )
        for c in report["history"][-8:]
    ]
    return ["<h2>Pass rate</h2>", _table(["cycle", "pass rate", "interval", "labelled", "outputs"], rows)]


def _chart_sections(charts: dict[str, str], report: dict[str, Any]) -> list[str]:
    """Each chart under its heading; the segments' and the triggers' tables under their charts."""
    parts = []
    for name, uri in charts.items():
        parts.append(f"<h2>{html.escape(name.capitalize())}</h2><img alt='{html.escape(name)}' src='{uri}'>")
        if name == "per segment" and report["segments"]:
            parts.append(_segments_table(report))
        if name == "trigger timeline":
            parts.append(_events_table(report))
    return parts


def _segments_table(report: dict[str, Any]) -> str:
    rows = [
        (
            s.removeprefix("segment:"),
            _pct(d["value"]),
            f"[{_pct(d['low'])}, {_pct(d['high'])}]",
            d.get("labelled"),
        )
        for s, d in sorted(report["segments"].items())
    ]
    return _table(["segment", "pass rate", "interval", "labelled"], rows)


def _events_table(report: dict[str, Any]) -> str:
    if not report["events"]:
        return "<p>No trigger moved.</p>"
    rows = [
        (
            f"{e['at']:%Y-%m-%d %H:%M}",
            e["trigger"],
            e["scope"],
            f"{e['from_state']} -> {e['to_state']}",
            e["reason"],
        )
        for e in report["events"]
    ]
    return _table(["at", "trigger", "scope", "transition", "reason"], rows)


def _worst_section(report: dict[str, Any]) -> list[str]:
    """The week's failed reviews with the reviewers' reasons."""
    heading = "<h2>The worst examples of the week</h2>"
    if not report["worst"]:
        return [heading, "<p>No failed reviews this week.</p>"]
    rows = [
        (w["output_id"], w["reason"], w["input"], w["output"], w["confidence"], w["user_action"])
        for w in report["worst"]
    ]
    header = ["output", "reviewer's reason", "input", "output text", "confidence", "user action"]
    return [heading, _table(header, rows)]


def _judges_section(report: dict[str, Any]) -> list[str]:
    """Each judge's agreement with the reviewers (Cohen's kappa with its interval)."""
    heading = "<h2>Judge agreement with the reviewers</h2>"
    if not report["judges"]:
        return [heading, "<p>No judge labelled this week's sample.</p>"]
    rows = [
        (
            name,
            "n/a" if j.get("kappa") is None else f"{j['kappa']:.2f}",
            "n/a" if j.get("low") is None else f"[{j['low']:.2f}, {j['high']:.2f}]",
            _pct(j.get("agreement")),
            j.get("n"),
            j.get("judged"),
        )
        for name, j in sorted(report["judges"].items())
    ]
    header = ["judge", "kappa", "interval", "raw agreement", "paired items", "judged"]
    return [heading, _table(header, rows)]


def _costs_section(report: dict[str, Any]) -> list[str]:
    costs: WeekCosts = report["costs"]
    return ["<h2>Cost of the week</h2>", _table(["item", "amount"], format_costs(costs))]


def _brief_section(report: dict[str, Any]) -> list[str]:
    return ["<h2>Launch brief</h2>", f"<pre>{html.escape(format_brief(report['brief']))}</pre>"]


def summary_text(report: dict[str, Any]) -> str:
    """A plain-text summary, for an email body."""
    cycle = report["cycle"]
    baseline = report["baseline"]
    costs: WeekCosts = report["costs"]
    mode = report["brief"]["mode"] or "normal"
    lines = [
        f"{report['feature']}: weekly review for the cycle of {cycle['at']:%Y-%m-%d %H:%M} UTC",
        f"Pass rate {_pct(cycle['pass_rate'])} "
        f"[{_pct(cycle['pass_rate_low'])}, {_pct(cycle['pass_rate_high'])}] "
        f"from {cycle['labelled']} labels of {cycle['outputs']:,} outputs; baseline "
        + (f"{_pct(baseline['pass_rate'])} (v{baseline['version']})" if baseline else "none yet")
        + f"; mode {mode}.",
    ]
    if report["alerts"]:
        lines.append("Triggers:")
        lines += [f"  {a['state']:8s} {a['trigger']}[{a['scope']}]: {a['reason']}" for a in report["alerts"]]
    else:
        lines.append("Triggers: all ok.")
    if report["drifted"]:
        lines.append("Drifted: " + ", ".join(report["drifted"]))
    if report["worst"]:
        lines.append(f"Failed reviews this week: {len(report['worst'])} shown in the report; reasons:")
        reasons: dict[str, int] = {}
        for w in report["worst"]:
            reasons[w["reason"]] = reasons.get(w["reason"], 0) + 1
        lines += [f"  {count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda x: -x[1])]
    lines.append("Cost of the week:")
    lines += [f"  {item}: {amount}" for item, amount in format_costs(costs)]
    lines.append(f"Owner {report['brief']['owner']}, decision owner {report['brief']['decision_owner']}.")
    return "\n".join(lines)


def default_path(feature: str, cycle_at: datetime) -> str:
    return f"aiqm-report-{feature}-{cycle_at:%Y-%m-%d}.html"
