"""How many human labels a week does detection need, with and without an LLM judge?

Replays simulated histories (the project's own simulator, `monitor.demo.simulate`) through
`aiqm backtest` at human budgets of 50, 25 and 12 labels a week (`sample_size`; the cap it may
grow to, `max_sample_size`, is four times that), once with humans only and once with a judge
whose verdicts cover every output (sensitivity 0.8, specificity 0.93, as a decent LLM grader).
Two histories a budget: a stable feature (92 %, 40 weeks: any `retrain` is a false alarm) and a
slide (93 % falling to 83 % from week 10 to 20: the delay of `retrain` after week 10). It reports
the false alarms, the detection delay and the mean width of the weekly interval, side by side
with the humans-only estimator at the same budget.

    .venv/bin/python benchmarks/label_efficiency.py [--seeds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config import load_settings
from monitor.cycle.backtest import run_backtest
from monitor.demo.simulate import START, HistorySpec, write_history

BUDGETS = (50, 25, 12)
SENSITIVITY, SPECIFICITY = 0.8, 0.93  # P(judge fails | truly failing), P(judge passes | truly passing)
HISTORIES = {
    "stable": HistorySpec(feature="bench", weeks=40, volume=800, pass_rate=0.92),
    "slide": HistorySpec(
        feature="bench", weeks=32, volume=800, pass_rate=[(0, 0.93), (10, 0.93), (20, 0.83)]
    ),
}
SLIDE_STARTS = 10


def _with_judge(labels: Path, seed: int) -> None:
    """Append the judge's verdict on every output (the human labels there are the truth)."""
    rng = random.Random(seed)
    lines = labels.read_text(encoding="utf-8").splitlines()
    judged = []
    for line in lines:
        truth = json.loads(line)
        ok = truth["verdict"] == "pass"
        right = rng.random() < (SPECIFICITY if ok else SENSITIVITY)
        says = ok if right else not ok
        judged.append(
            json.dumps(
                {
                    "output_id": truth["output_id"],
                    "feature": truth["feature"],
                    "verdict": "pass" if says else "fail",
                    "source": "judge:grader",
                }
            )
        )
    labels.write_text("\n".join([*lines, *judged]) + "\n", encoding="utf-8")


def _replay(name: str, budget: int, judge: bool, seed: int, folder: Path) -> dict[str, Any]:
    spec = replace(HISTORIES[name], seed=seed)
    outputs, labels, _ = write_history(spec, folder)
    if judge:
        _with_judge(labels, seed)
    config = folder / "aiqm.yaml"
    config.write_text(
        f"defaults: {{sample_size: {budget}, max_sample_size: {4 * budget}}}\n", encoding="utf-8"
    )
    result = run_backtest(str(outputs), str(labels), load_settings(config), seed=seed)
    cycles = result["features"]["bench"]["cycles"]
    fired = [c["at"] for c in cycles if any(_retrain_fires(a) for a in c["alerts"])]
    widths = [c["pass_rate_high"] - c["pass_rate_low"] for c in cycles if c["pass_rate"] is not None]
    first_week = None
    if fired:
        first = datetime.fromisoformat(fired[0].replace("Z", "+00:00"))
        first_week = (first - START) // timedelta(days=7) - 1  # the week the cycle evaluated
    return {
        "labels_asked": sum(c["sampled"] for c in cycles) / max(len(cycles), 1),
        "first_retrain_week": first_week,
        "mean_width": statistics.fmean(widths) if widths else None,
    }


def _retrain_fires(alert: dict[str, str]) -> bool:
    return alert["trigger"] == "retrain" and alert["scope"] == "all" and alert["state"] == "firing"


def run(seeds: int) -> list[dict[str, Any]]:
    rows = []
    for budget in BUDGETS:
        for judge in (False, True):
            runs = []
            for seed in range(seeds):
                with tempfile.TemporaryDirectory(prefix="aiqm-label-bench-") as tmp:
                    stable = _replay("stable", budget, judge, seed, Path(tmp))
                with tempfile.TemporaryDirectory(prefix="aiqm-label-bench-") as tmp:
                    slide = _replay("slide", budget, judge, seed, Path(tmp))
                runs.append((stable, slide))
            weeks = [s["first_retrain_week"] for _, s in runs]
            delays = [week - SLIDE_STARTS for week in weeks if week is not None]
            rows.append(
                {
                    "budget": budget,
                    "judge": judge,
                    "labels_asked_per_week": round(statistics.fmean(s["labels_asked"] for s, _ in runs), 1),
                    "false_alarms": sum(s["first_retrain_week"] is not None for s, _ in runs),
                    "slides_caught": len(delays),
                    "median_delay_weeks": statistics.median(delays) if delays else None,
                    "mean_interval_width": round(statistics.fmean(s["mean_width"] for _, s in runs), 3),
                    "runs": seeds,
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        "",
        "| human labels a week | judge | labels asked (mean) | false `retrain` (stable, 40 wk) "
        "| slides caught | median delay (weeks after the slide starts) | mean 95% interval width |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delay = "-" if r["median_delay_weeks"] is None else f"{r['median_delay_weeks']:g}"
        lines.append(
            f"| {r['budget']} | {'yes' if r['judge'] else 'no'} | {r['labels_asked_per_week']} | "
            f"{r['false_alarms']} of {r['runs']} | {r['slides_caught']} of {r['runs']} | {delay} | "
            f"{r['mean_interval_width']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="histories of each kind per budget")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.seeds)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
