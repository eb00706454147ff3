"""The `aiqm` parser, built from each command group's own, and `main`, which runs a command
and turns the package's errors into exit codes (2 usage or input, 1 failure, 130 interrupted)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from monitor.cli import baseline, cycle, intake, reports, server
from monitor.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Commands, err
from monitor.errors import ConfigError, InputError, MonitorError, NotFound

__all__ = ["build_parser", "main"]

COMMANDS: tuple[Callable[[Commands], None], ...] = (
    server.add_demo,
    intake.add_ingest,
    intake.add_labels,
    cycle.add_backtest,
    cycle.add_cycle,
    baseline.add_baseline,
    server.add_serve,
    server.add_token,
    intake.add_pull,
    intake.add_retention,
    reports.add_status,
    reports.add_brief,
    reports.add_report,
    reports.add_digest,
    reports.add_drift,
)
"""Each adds its command (or group) to the parser; in this order `aiqm --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiqm", description="Quality-drift monitoring for AI features.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except (ConfigError, InputError, NotFound) as exc:
        err(f"aiqm: {exc}")
        return EXIT_USAGE
    except MonitorError as exc:
        err(f"aiqm: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err("aiqm: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
