"""`aiqm cycle` (one scheduled cycle now, then the budget check and the webhooks) and
`aiqm backtest` (a history replayed through the cycle code)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import EXIT_OK, Commands, add_command, config_option, err, utc_now
from monitor.errors import InputError, NotFound

if TYPE_CHECKING:
    pass

__all__ = ["add_backtest", "add_cycle", "cmd_backtest", "cmd_cycle"]


def cmd_cycle(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.runner import CycleRunner
    from monitor.daemon.app import open_store
    from monitor.decide.schedule import last_fire_time
    from monitor.judges import build_labellers
    from monitor.records import parse_ts
    from monitor.reporting.after_cycle import after_cycles, webhook_notifier
    from monitor.store.cycle_queries import feature_names

    settings = load_settings(args.config)
    engine = open_store(settings)
    now = parse_ts(args.at, "--at") if args.at else utc_now()
    with engine.connect() as conn:
        names = [args.feature] if args.feature else feature_names(conn)
        if args.feature and args.feature not in feature_names(conn):
            raise NotFound(f"no feature {args.feature!r} in the store")
    runner = CycleRunner(engine, settings, utc_now, labellers=build_labellers(settings, engine, utc_now))
    ran = []
    for name in names:
        at = last_fire_time(settings.feature(name).schedule, now)
        if at is None:
            err(f"{name}: the schedule has not fired yet")
            continue
        outcome = runner.run(name, at)
        print(json.dumps({"feature": name, **outcome.to_json()}))
        ran.append((name, at))
    with webhook_notifier(engine, settings, utc_now) as notifier:  # the budget check, digest, notifications
        report = after_cycles(engine, settings, ran, utc_now, notifier, args.feature)
    for line in report.lines():
        err(line)
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.backtest import run_backtest
    from monitor.reporting.status import format_backtest

    for path in (args.outputs, args.labels):
        if not Path(path).is_file():
            raise InputError("no such file", source=path)
    result = run_backtest(args.outputs, args.labels, load_settings(args.config), seed=args.seed)
    print(json.dumps(result, indent=1) if args.json else format_backtest(result))
    return EXIT_OK


# --------------------------------------------------------------------------- the parsers


def add_backtest(commands: Commands) -> None:
    backtest = add_command(
        commands, "backtest", cmd_backtest, "replay a history through the cycle code, with a simulated clock"
    )
    backtest.add_argument("--outputs", required=True, help="JSONL of logged outputs")
    backtest.add_argument("--labels", required=True, help="JSONL of labels the simulated reviewers give")
    backtest.add_argument("--seed", type=int, default=0, help="the sampler's seed (same seed, same result)")
    backtest.add_argument("--json", action="store_true")
    config_option(backtest)


def add_cycle(commands: Commands) -> None:
    cycle = add_command(commands, "cycle", cmd_cycle, "run one scheduled cycle now (or as if at --at)")
    cycle.add_argument("--at", default=None, help="RFC 3339 time the cycle runs as if scheduled at")
    cycle.add_argument("--feature", default=None, help="only this feature (default: all)")
    config_option(cycle)
