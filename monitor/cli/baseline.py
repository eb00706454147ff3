"""`aiqm baseline set|accept|list`: the baseline quality is judged against."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from monitor.cli.common import EXIT_OK, Commands, add_command, add_group, config_option, utc_now

__all__ = ["add_baseline", "cmd_baseline_accept", "cmd_baseline_list", "cmd_baseline_set"]


def _baseline_line(feature: str, row: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    numbers = (
        f"{pct(row['pass_rate'])} [{pct(row['pass_rate_low'])}, {pct(row['pass_rate_high'])}] "
        f"from {row['labelled']} labels"
        if row["pass_rate"] is not None
        else "no numbers yet"
    )
    return (
        f"{feature} v{row['version']:<3d} {row['status']:10s} {row['kind']:9s} {numbers}, "
        f"window {row['window_start']:%Y-%m-%d %H:%M} .. {row['window_end']:%Y-%m-%d %H:%M}  {row['reason']}"
    )


def _baseline_json(row: dict[str, Any]) -> dict[str, Any]:
    skip = {"pk", "segments"}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items() if k not in skip}


def cmd_baseline_set(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.baselines import pin_baseline
    from monitor.daemon.app import open_store
    from monitor.records import parse_ts

    start, end = parse_ts(args.start, "--from"), parse_ts(args.end, "--to")
    settings = load_settings(args.config)
    row = pin_baseline(open_store(settings), settings, args.feature, start, end, utc_now(), args.reason)
    print(_baseline_line(args.feature, row))
    print(f"the triggers now compare the cycles after {end.isoformat()} with this baseline")
    return EXIT_OK


def cmd_baseline_accept(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.baselines import accept_proposal
    from monitor.daemon.app import open_store

    settings = load_settings(args.config)
    row = accept_proposal(open_store(settings), settings, args.feature, utc_now())
    print(_baseline_line(args.feature, row))
    return EXIT_OK


def cmd_baseline_list(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.baselines import baseline_list
    from monitor.daemon.app import open_store

    rows = baseline_list(open_store(load_settings(args.config)), args.feature)
    if args.json:
        print(json.dumps({"feature": args.feature, "baselines": [_baseline_json(r) for r in rows]}, indent=2))
    elif not rows:
        print(f"{args.feature}: no baseline yet (the first cycles with labels make the default one)")
    else:
        for row in rows:
            print(_baseline_line(args.feature, row))
    return EXIT_OK


def add_baseline(commands: Commands) -> None:
    baseline = add_group(commands, "baseline", "the baseline quality is judged against", "baseline_command")
    baseline_set = add_command(
        baseline, "set", cmd_baseline_set, "pin a baseline from the labelled review samples of a time range"
    )
    baseline_set.add_argument("--feature", required=True)
    baseline_set.add_argument("--from", dest="start", required=True, metavar="TS", help="RFC 3339, inclusive")
    baseline_set.add_argument("--to", dest="end", required=True, metavar="TS", help="RFC 3339, exclusive")
    baseline_set.add_argument("--reason", default="", help="why (kept in the baseline's history)")
    config_option(baseline_set)
    baseline_accept = add_command(
        baseline, "accept", cmd_baseline_accept, "adopt the newest baseline a cycle proposed"
    )
    baseline_accept.add_argument("--feature", required=True)
    config_option(baseline_accept)
    baseline_list = add_command(baseline, "list", cmd_baseline_list, "every version of a feature's baseline")
    baseline_list.add_argument("--feature", required=True)
    baseline_list.add_argument("--json", action="store_true")
    config_option(baseline_list)
