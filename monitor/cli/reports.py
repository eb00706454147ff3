"""`aiqm status`, `brief`, `report`, `digest`, `drift`: what the monitor found, for people."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path

from monitor.cli.common import EXIT_ERROR, EXIT_OK, Commands, add_command, config_option, utc_now
from monitor.errors import ConfigError, InputError

__all__ = [
    "add_brief",
    "add_digest",
    "add_drift",
    "add_report",
    "add_status",
    "cmd_brief",
    "cmd_digest",
    "cmd_drift",
    "cmd_report",
    "cmd_status",
]


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.reporting.status import collect_status, format_status

    settings = load_settings(args.config)
    engine = open_store(settings)
    report = collect_status(engine, settings, utc_now())
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_status(report))
    return EXIT_OK


def cmd_brief(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.reporting.brief import collect_brief, format_brief

    settings = load_settings(args.config)
    print(format_brief(collect_brief(settings, args.feature, open_store(settings))))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.reporting.report import collect_report, default_path, render_html

    settings = load_settings(args.config)
    report = collect_report(open_store(settings), settings, args.feature, _week(args.week))
    path = Path(args.out) if args.out else Path.cwd() / default_path(args.feature, report["cycle"]["at"])
    path.write_text(render_html(report), encoding="utf-8")
    print(path)
    return EXIT_OK


def _week(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise InputError("must be a date as YYYY-MM-DD", source="--week") from None


def cmd_digest(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.reporting.digest import deliver_digest

    settings = load_settings(args.config)
    if settings.digest is None:
        raise ConfigError("no `digest` block in the configuration: nowhere to send the digest")
    notes = deliver_digest(open_store(settings), settings, args.feature, _week(args.week))
    for note in notes:
        print(f"{args.feature}: {note}")
    return EXIT_ERROR if any("failed" in note for note in notes) else EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.decide.drift import (
        OutputColumns,
        compare_columns,
        format_report,
        prepare_reference,
        thresholds_of,
    )
    from monitor.intake.ingest import OUTPUTS, read_records

    settings = load_settings(args.config)  # the same drift thresholds as the daemon's cycles
    drift = settings.feature(args.feature).drift if args.feature else settings.defaults.drift
    reference = OutputColumns.from_records(r.to_json() for r in read_records(args.reference, OUTPUTS))
    current = OutputColumns.from_records(r.to_json() for r in read_records(args.current, OUTPUTS))
    report = compare_columns(prepare_reference(reference), current, thresholds_of(drift))
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    return EXIT_OK


# --------------------------------------------------------------------------- the parsers


def add_status(commands: Commands) -> None:
    status = add_command(commands, "status", cmd_status, "each feature's mode, triggers and last metrics")
    status.add_argument("--json", action="store_true")
    config_option(status)


def add_brief(commands: Commands) -> None:
    brief = add_command(commands, "brief", cmd_brief, "the feature's one-page launch brief")
    brief.add_argument("--feature", required=True)
    config_option(brief)


def _week_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--week", default=None, metavar="DATE", help="the cycle on or before DATE (default: last)"
    )


def add_report(commands: Commands) -> None:
    report = add_command(commands, "report", cmd_report, "the weekly digest as one self-contained HTML file")
    report.add_argument("--feature", required=True)
    _week_option(report)
    report.add_argument(
        "--out", default=None, metavar="PATH", help="default: aiqm-report-<feature>-<date>.html"
    )
    config_option(report)


def add_digest(commands: Commands) -> None:
    digest = add_command(
        commands, "digest", cmd_digest, "send the weekly digest now, by the configured email and webhooks"
    )
    digest.add_argument("--feature", required=True)
    _week_option(digest)
    config_option(digest)


def add_drift(commands: Commands) -> None:
    drift = add_command(
        commands, "drift", cmd_drift, "compare two JSONL files of logged outputs, signal by signal"
    )
    drift.add_argument("reference", help="JSONL of the reference outputs")
    drift.add_argument("current", help="JSONL of the current outputs")
    drift.add_argument("--json", action="store_true")
    drift.add_argument("--feature", help="use this feature's drift settings (default: the defaults block)")
    config_option(drift)
