"""`aiqm ingest`, `aiqm labels import`, `aiqm pull`, `aiqm retention`: records in, raw text out."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_command,
    add_group,
    config_option,
    err,
    utc_now,
)

__all__ = [
    "add_ingest",
    "add_labels",
    "add_pull",
    "add_retention",
    "cmd_ingest",
    "cmd_labels_import",
    "cmd_pull",
    "cmd_retention",
]


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
            err(f"{path}: no such file")
            status = EXIT_USAGE
            continue
        summary = (
            import_file(
                engine,
                path,
                OUTPUTS,
                utc_now,
                skip_bad=args.skip_bad,
                rejects_dir=args.rejects_dir,
                prepare=redact,
            )
            if kind_name == "outputs"
            else import_file(
                engine, path, LABELS, utc_now, skip_bad=args.skip_bad, rejects_dir=args.rejects_dir
            )
        )
        for bad in summary.bad_lines:
            err(bad.describe(summary.source))
        if summary.rejected > len(summary.bad_lines):
            err(f"{summary.source}: ... and {summary.rejected - len(summary.bad_lines)} more bad lines")
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
        err("nothing to pull: set pull.jsonl_dirs or pull.sql in the config, or name directories")
        return EXIT_USAGE
    engine = open_store(settings)
    if directories:
        summary = pull_jsonl(
            engine, directories, settings.pull.pattern, utc_now, args.rejects_dir, storage_redaction(settings)
        )
        for path, bad in summary.bad_lines:
            err(bad.describe(path))
        print(summary.describe())
    if sql is not None:
        from monitor.intake.pull_sql import pull_configured

        pulled = pull_configured(
            engine, sql, now=utc_now, rejects_dir=args.rejects_dir, prepare=storage_redaction(settings)
        )
        for bad in pulled.bad_rows:
            err(bad.describe(f"{sql.table} row"))
        print(pulled.describe(sql.table))
    return EXIT_OK


def cmd_retention(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.intake.privacy import apply_retention

    settings = load_settings(args.config)
    days = args.days if args.days is not None else settings.privacy.retention_days
    if days is None:
        err("no retention configured: set privacy.retention_days in the config, or pass --days")
        return EXIT_USAGE
    if days <= 0:
        err("--days must be positive")
        return EXIT_USAGE
    cleared = apply_retention(open_store(settings), days, utc_now())
    print(f"raw inputs and outputs older than {days:g} days deleted from {cleared} outputs")
    return EXIT_OK


# --------------------------------------------------------------------------- the parsers


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


def add_ingest(commands: Commands) -> None:
    command = add_command(
        commands, "ingest", cmd_ingest, "import logged outputs from JSONL files ('-' is standard input)"
    )
    _import_options(command)
    config_option(command)


def add_labels(commands: Commands) -> None:
    labels = add_group(commands, "labels", "labels", "labels_command")
    labels_import = add_command(labels, "import", cmd_labels_import, "import labels from JSONL files")
    _import_options(labels_import)
    config_option(labels_import)


def add_pull(commands: Commands) -> None:
    pull = add_command(
        commands,
        "pull",
        cmd_pull,
        "import new outputs of pull mode: JSONL directories and the SQL table (one pass)",
    )
    pull.add_argument("dirs", nargs="*", type=Path, help="directories (default: pull.jsonl_dirs)")
    pull.add_argument("--rejects-dir", type=Path, default=None, help="default: each log's directory")
    config_option(pull)


def add_retention(commands: Commands) -> None:
    retention = add_command(
        commands,
        "retention",
        cmd_retention,
        "delete raw inputs and outputs older than privacy.retention_days",
    )
    retention.add_argument("--days", type=float, default=None, help="override privacy.retention_days")
    config_option(retention)
