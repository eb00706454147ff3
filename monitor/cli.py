"""`aiqm`: parse the command line, call the package, format what comes back. No logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError, InputError, MonitorError, NotFound

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _now() -> datetime:
    return datetime.now(UTC)


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_ingest(args: argparse.Namespace) -> int:
    return _import(args, "outputs")


def cmd_labels_import(args: argparse.Namespace) -> int:
    return _import(args, "labels")


def _import(args: argparse.Namespace, kind_name: str) -> int:
    from monitor.app import open_store
    from monitor.config import load_settings
    from monitor.ingest import LABELS, OUTPUTS, import_file

    engine = open_store(load_settings(args.config))
    status = EXIT_OK
    for path in args.paths:
        if path != "-" and not Path(path).is_file():
            _err(f"{path}: no such file")
            status = EXIT_USAGE
            continue
        kind = OUTPUTS if kind_name == "outputs" else LABELS
        summary = import_file(
            engine,
            path,
            kind,
            _now,
            skip_bad=args.skip_bad,  # type: ignore[arg-type]
            rejects_dir=args.rejects_dir,
        )
        for bad in summary.bad_lines:
            _err(bad.describe(summary.source))
        if summary.rejected > len(summary.bad_lines):
            _err(f"{summary.source}: ... and {summary.rejected - len(summary.bad_lines)} more bad lines")
        print(summary.describe(kind_name))
        if summary.rejected and not args.skip_bad:
            status = EXIT_USAGE
    return status


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.app import open_store
    from monitor.config import load_settings
    from monitor.status import collect_status, format_status

    settings = load_settings(args.config)
    engine = open_store(settings)
    report = collect_status(engine, settings)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_status(report))
    return EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    from monitor.drift import OutputColumns, compare_columns, format_report, prepare_reference
    from monitor.ingest import OUTPUTS, read_records

    reference = OutputColumns.from_records(r.to_json() for r in read_records(args.reference, OUTPUTS))
    current = OutputColumns.from_records(r.to_json() for r in read_records(args.current, OUTPUTS))
    report = compare_columns(prepare_reference(reference), current)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.backtest import run_backtest
    from monitor.config import load_settings
    from monitor.status import format_backtest

    for path in (args.outputs, args.labels):
        if not Path(path).is_file():
            raise InputError("no such file", source=path)
    result = run_backtest(args.outputs, args.labels, load_settings(args.config), seed=args.seed)
    print(json.dumps(result, indent=1) if args.json else format_backtest(result))
    return EXIT_OK


def cmd_cycle(args: argparse.Namespace) -> int:
    from monitor.app import open_store
    from monitor.config import load_settings
    from monitor.cycle import CycleRunner
    from monitor.records import parse_ts
    from monitor.schedule import last_fire_time
    from monitor.store.cycle_queries import feature_names

    settings = load_settings(args.config)
    engine = open_store(settings)
    now = parse_ts(args.at, "--at") if args.at else _now()
    with engine.connect() as conn:
        names = [args.feature] if args.feature else feature_names(conn)
        if args.feature and args.feature not in feature_names(conn):
            raise NotFound(f"no feature {args.feature!r} in the store")
    runner = CycleRunner(engine, settings, _now)
    for name in names:
        at = last_fire_time(settings.feature(name).schedule, now) if not args.at else now
        if at is None:
            _err(f"{name}: the schedule has not fired yet")
            continue
        outcome = runner.run(name, at)
        print(json.dumps({"feature": name, **outcome.to_json()}))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(weeks=args.weeks, data_dir=args.data_dir, serve=not args.no_serve, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiqm", description="Quality-drift monitoring for AI features.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    def config_option(command: argparse.ArgumentParser) -> None:
        command.add_argument("--config", type=Path, default=None, help="YAML configuration (or AIQM_CONFIG)")

    demo = add("demo", cmd_demo, "a synthetic history on a temporary SQLite store, and what to open")
    demo.add_argument("--weeks", type=int, default=16, help="weeks of history (default 16)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the demo store here")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="set up and print, without serving")

    for name, handler, what in (("ingest", cmd_ingest, "logged outputs"),):
        command = add(name, handler, f"import {what} from JSONL files ('-' is standard input)")
        _import_options(command)
        config_option(command)

    labels = add("labels", lambda _a: EXIT_USAGE, "labels")
    labels_sub = labels.add_subparsers(dest="labels_command", required=True, metavar="SUBCOMMAND")
    labels_import = add("import", cmd_labels_import, "import labels from JSONL files", labels_sub)
    _import_options(labels_import)
    config_option(labels_import)

    backtest = add(
        "backtest", cmd_backtest, "replay a history through the cycle code, with a simulated clock"
    )
    backtest.add_argument("--outputs", required=True, help="JSONL of logged outputs")
    backtest.add_argument("--labels", required=True, help="JSONL of labels the simulated reviewers give")
    backtest.add_argument("--seed", type=int, default=0, help="the sampler's seed (same seed, same result)")
    backtest.add_argument("--json", action="store_true")
    config_option(backtest)

    cycle = add("cycle", cmd_cycle, "run one scheduled cycle now (or as if at --at)")
    cycle.add_argument("--at", default=None, help="RFC 3339 time the cycle runs as if scheduled at")
    cycle.add_argument("--feature", default=None, help="only this feature (default: all)")
    config_option(cycle)

    status = add("status", cmd_status, "each feature's mode, triggers and last metrics")
    status.add_argument("--json", action="store_true")
    config_option(status)

    drift = add("drift", cmd_drift, "compare two JSONL files of logged outputs, signal by signal")
    drift.add_argument("reference", help="JSONL of the reference outputs")
    drift.add_argument("current", help="JSONL of the current outputs")
    drift.add_argument("--json", action="store_true")
    return parser


def _import_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("paths", nargs="+", metavar="PATH")
    command.add_argument(
        "--skip-bad",
        action="store_true",
        help="store the good lines; write the bad ones, with reasons, to a rejects file",
    )
    command.add_argument(
        "--rejects-dir", type=Path, default=None, help="where rejects files go (default: beside the input)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except (ConfigError, InputError, NotFound) as exc:
        _err(f"aiqm: {exc}")
        return EXIT_USAGE
    except MonitorError as exc:
        _err(f"aiqm: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("aiqm: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
