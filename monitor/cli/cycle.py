"""`aiqm cycle` (one scheduled cycle now, then the budget check and the webhooks) and
`aiqm backtest` (a history replayed through the cycle code)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import EXIT_OK, Commands, add_command, config_option, err, utc_now
from monitor.errors import InputError, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings

__all__ = ["add_backtest", "add_cycle", "cmd_backtest", "cmd_cycle"]


def cmd_cycle(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.runner import CycleRunner
    from monitor.daemon.app import open_store
    from monitor.decide.schedule import last_fire_time
    from monitor.judges import build_labellers
    from monitor.records import parse_ts
    from monitor.store.cycle_queries import feature_names

    settings = load_settings(args.config)
    engine = open_store(settings)
    now = parse_ts(args.at, "--at") if args.at else utc_now()
    with engine.connect() as conn:
        names = [args.feature] if args.feature else feature_names(conn)
        if args.feature and args.feature not in feature_names(conn):
            raise NotFound(f"no feature {args.feature!r} in the store")
    runner = CycleRunner(engine, settings, utc_now, labellers=build_labellers(settings, engine, utc_now))
    for name in names:
        at = last_fire_time(settings.feature(name).schedule, now)
        if at is None:
            err(f"{name}: the schedule has not fired yet")
            continue
        outcome = runner.run(name, at)
        print(json.dumps({"feature": name, **outcome.to_json()}))
        _check_budget(engine, settings, name, at)
        from monitor.reporting.otlp_export import export_after_cycle  # verdicts out; never raises

        export_after_cycle(engine, settings, name, at)
    if settings.webhooks:
        _notify(engine, settings, args.feature)
    return EXIT_OK


def _check_budget(engine: Engine, settings: Settings, feature: str, at: datetime) -> None:
    """A week over the feature's `budget_usd_per_week` becomes a `budget` event (the webhooks send it)."""
    from monitor.reporting.costs import check_budget
    from monitor.store.cycle_queries import cycle_row

    with engine.connect() as conn:
        row = cycle_row(conn, feature, at)
    over = check_budget(engine, settings, feature, row, utc_now()) if row is not None else None
    if over is not None:
        err(f"{feature}: the week cost ${over.total_usd:,.2f}, over its budget ${over.budget_usd:,.2f}")


def _notify(engine: Engine, settings: Settings, feature: str | None) -> None:
    """Deliver the transitions the cycles made (and any left over) to the webhooks; notes on stderr."""
    import httpx

    from monitor.reporting.notify import Notifier

    with httpx.Client() as http:
        for result in Notifier(engine, settings, http, utc_now).deliver_new(feature):
            note = f"; {result.error}" if result.error else ""
            what = f"{result.feature} {result.trigger}[{result.scope}] -> {result.to_state}"
            err(f"webhook {result.sink}: {what}: {result.status} after {result.attempts} attempt(s){note}")


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
