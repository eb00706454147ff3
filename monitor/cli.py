"""`aiqm`: parse the command line, call the package, format what comes back. No logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
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
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.intake.ingest import LABELS, OUTPUTS, import_file
    from monitor.intake.privacy import storage_redaction

    settings = load_settings(args.config)
    engine = open_store(settings)
    redact = storage_redaction(settings) if kind_name == "outputs" else None
    status = EXIT_OK
    for path in args.paths:
        if path != "-" and not Path(path).is_file():
            _err(f"{path}: no such file")
            status = EXIT_USAGE
            continue
        summary = (
            import_file(
                engine,
                path,
                OUTPUTS,
                _now,
                skip_bad=args.skip_bad,
                rejects_dir=args.rejects_dir,
                prepare=redact,
            )
            if kind_name == "outputs"
            else import_file(engine, path, LABELS, _now, skip_bad=args.skip_bad, rejects_dir=args.rejects_dir)
        )
        for bad in summary.bad_lines:
            _err(bad.describe(summary.source))
        if summary.rejected > len(summary.bad_lines):
            _err(f"{summary.source}: ... and {summary.rejected - len(summary.bad_lines)} more bad lines")
        print(summary.describe(kind_name))
        if summary.rejected and not args.skip_bad:
            status = EXIT_USAGE
    return status


def cmd_pull(args: argparse.Namespace) -> int:
    """One pass of pull mode over the configured (or given) JSONL directories."""
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.intake.privacy import storage_redaction
    from monitor.intake.pull_jsonl import pull_jsonl

    settings = load_settings(args.config)
    directories = args.dirs or list(settings.pull.jsonl_dirs)
    sql = settings.pull.sql if not args.dirs else None
    if not directories and sql is None:
        _err("nothing to pull: set pull.jsonl_dirs or pull.sql in the config, or name directories")
        return EXIT_USAGE
    engine = open_store(settings)
    if directories:
        summary = pull_jsonl(
            engine, directories, settings.pull.pattern, _now, args.rejects_dir, storage_redaction(settings)
        )
        for path, bad in summary.bad_lines:
            _err(bad.describe(path))
        print(summary.describe())
    if sql is not None:
        from monitor.intake.pull_sql import pull_configured

        pulled = pull_configured(
            engine, sql, now=_now, rejects_dir=args.rejects_dir, prepare=storage_redaction(settings)
        )
        for bad in pulled.bad_rows:
            _err(bad.describe(f"{sql.table} row"))
        print(pulled.describe(sql.table))
    return EXIT_OK


def cmd_retention(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.intake.privacy import apply_retention

    settings = load_settings(args.config)
    days = args.days if args.days is not None else settings.privacy.retention_days
    if days is None:
        _err("no retention configured: set privacy.retention_days in the config, or pass --days")
        return EXIT_USAGE
    if days <= 0:
        _err("--days must be positive")
        return EXIT_USAGE
    cleared = apply_retention(open_store(settings), days, _now())
    print(f"raw inputs and outputs older than {days:g} days deleted from {cleared} outputs")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.reporting.status import collect_status, format_status

    settings = load_settings(args.config)
    engine = open_store(settings)
    report = collect_status(engine, settings, _now())
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
    from monitor.decide.drift import OutputColumns, compare_columns, format_report, prepare_reference
    from monitor.intake.ingest import OUTPUTS, read_records

    reference = OutputColumns.from_records(r.to_json() for r in read_records(args.reference, OUTPUTS))
    current = OutputColumns.from_records(r.to_json() for r in read_records(args.current, OUTPUTS))
    report = compare_columns(prepare_reference(reference), current)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
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
    now = parse_ts(args.at, "--at") if args.at else _now()
    with engine.connect() as conn:
        names = [args.feature] if args.feature else feature_names(conn)
        if args.feature and args.feature not in feature_names(conn):
            raise NotFound(f"no feature {args.feature!r} in the store")
    runner = CycleRunner(engine, settings, _now, labellers=build_labellers(settings, engine, _now))
    ran = []
    for name in names:
        at = last_fire_time(settings.feature(name).schedule, now)
        if at is None:
            _err(f"{name}: the schedule has not fired yet")
            continue
        outcome = runner.run(name, at)
        print(json.dumps({"feature": name, **outcome.to_json()}))
        ran.append((name, at))
    with webhook_notifier(engine, settings, _now) as notifier:  # the budget check, digest, notifications
        report = after_cycles(engine, settings, ran, _now, notifier, args.feature)
    for line in report.lines():
        _err(line)
    return EXIT_OK


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
    row = pin_baseline(open_store(settings), settings, args.feature, start, end, _now(), args.reason)
    print(_baseline_line(args.feature, row))
    print(f"the triggers now compare the cycles after {end.isoformat()} with this baseline")
    return EXIT_OK


def cmd_baseline_accept(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.cycle.baselines import accept_proposal
    from monitor.daemon.app import open_store

    settings = load_settings(args.config)
    row = accept_proposal(open_store(settings), settings, args.feature, _now())
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


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo.run import run_demo

    return run_demo(weeks=args.weeks, data_dir=args.data_dir, serve=not args.no_serve, port=args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import serve

    return serve(load_settings(args.config), args.host, args.port)


def cmd_token_create(args: argparse.Namespace) -> int:
    from monitor.api.auth import create_token
    from monitor.config import load_settings
    from monitor.daemon.app import open_store

    engine = open_store(load_settings(args.config))
    token = create_token(engine, args.name, args.role, _now())
    print(token)
    _err(
        f"token {args.name!r} with role {args.role!r} created; it is shown only this once "
        "(the store keeps its sha256). Send it as: Authorization: Bearer <token>"
    )
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from monitor.api.auth import revoke_token
    from monitor.config import load_settings
    from monitor.daemon.app import open_store

    if not revoke_token(open_store(load_settings(args.config)), args.name, _now()):
        raise NotFound(f"no token named {args.name!r} (or it was revoked already)")
    _err(f"token {args.name!r} revoked")
    return EXIT_OK


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

    baseline = add("baseline", lambda _a: EXIT_USAGE, "the baseline quality is judged against")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="SUBCOMMAND")
    baseline_set = add(
        "set",
        cmd_baseline_set,
        "pin a baseline from the labelled review samples of a time range",
        baseline_sub,
    )
    baseline_set.add_argument("--feature", required=True)
    baseline_set.add_argument("--from", dest="start", required=True, metavar="TS", help="RFC 3339, inclusive")
    baseline_set.add_argument("--to", dest="end", required=True, metavar="TS", help="RFC 3339, exclusive")
    baseline_set.add_argument("--reason", default="", help="why (kept in the baseline's history)")
    config_option(baseline_set)
    baseline_accept = add(
        "accept", cmd_baseline_accept, "adopt the newest baseline a cycle proposed", baseline_sub
    )
    baseline_accept.add_argument("--feature", required=True)
    config_option(baseline_accept)
    baseline_list = add("list", cmd_baseline_list, "every version of a feature's baseline", baseline_sub)
    baseline_list.add_argument("--feature", required=True)
    baseline_list.add_argument("--json", action="store_true")
    config_option(baseline_list)

    serve = add("serve", cmd_serve, "the daemon: scheduler, HTTP API and review page")
    serve.add_argument("--host", default=None, help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port (default: server.port, 8000; 0: any free)"
    )
    config_option(serve)

    token = add("token", lambda _a: EXIT_USAGE, "API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="SUBCOMMAND")
    token_create = add(
        "create", cmd_token_create, "mint a token; prints it once on standard output", token_sub
    )
    token_create.add_argument("--role", required=True, choices=("ingest", "review", "read", "admin"))
    token_create.add_argument("--name", required=True, help="who or what holds it (unique)")
    config_option(token_create)
    token_revoke = add("revoke", cmd_token_revoke, "revoke a token made by `aiqm token create`", token_sub)
    token_revoke.add_argument("--name", required=True)
    config_option(token_revoke)

    pull = add(
        "pull", cmd_pull, "import new outputs of pull mode: JSONL directories and the SQL table (one pass)"
    )
    pull.add_argument("dirs", nargs="*", type=Path, help="directories (default: pull.jsonl_dirs)")
    pull.add_argument("--rejects-dir", type=Path, default=None, help="default: each log's directory")
    config_option(pull)

    retention = add(
        "retention", cmd_retention, "delete raw inputs and outputs older than privacy.retention_days"
    )
    retention.add_argument("--days", type=float, default=None, help="override privacy.retention_days")
    config_option(retention)

    status = add("status", cmd_status, "each feature's mode, triggers and last metrics")
    status.add_argument("--json", action="store_true")
    config_option(status)

    brief = add("brief", cmd_brief, "the feature's one-page launch brief")
    brief.add_argument("--feature", required=True)
    config_option(brief)

    report = add("report", cmd_report, "the weekly digest as one self-contained HTML file")
    report.add_argument("--feature", required=True)
    report.add_argument(
        "--week", default=None, metavar="DATE", help="the cycle on or before DATE (default: last)"
    )
    report.add_argument(
        "--out", default=None, metavar="PATH", help="default: aiqm-report-<feature>-<date>.html"
    )
    config_option(report)

    digest = add("digest", cmd_digest, "send the weekly digest now, by the configured email and webhooks")
    digest.add_argument("--feature", required=True)
    digest.add_argument(
        "--week", default=None, metavar="DATE", help="the cycle on or before DATE (default: last)"
    )
    config_option(digest)

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
