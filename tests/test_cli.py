"""The `aiqm` command line's assembly: each command group builds its own parsers, `build_parser`
lists them in one order, and `main` turns the package's errors into exit codes."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from monitor.cli import build_parser, entry, main
from monitor.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Commands, add_command
from monitor.errors import ConfigError, InputError, MonitorError, NotFound

TOP_LEVEL = [
    "demo",
    "ingest",
    "labels",
    "backtest",
    "cycle",
    "baseline",
    "serve",
    "token",
    "pull",
    "retention",
    "status",
    "brief",
    "report",
    "digest",
    "drift",
]


def test_the_help_lists_every_command_once_in_order() -> None:
    help_text = build_parser().format_help()
    listed = re.findall(r"^    (\S+)", help_text, flags=re.MULTILINE)  # continuation lines indent more
    assert listed == TOP_LEVEL


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["ingest", "a.jsonl", "--skip-bad"], "cmd_ingest"),
        (["labels", "import", "a.jsonl"], "cmd_labels_import"),
        (["backtest", "--outputs", "o", "--labels", "l", "--json"], "cmd_backtest"),
        (["cycle", "--at", "2026-03-02T06:00:00Z"], "cmd_cycle"),
        (["baseline", "set", "--feature", "f", "--from", "a", "--to", "b"], "cmd_baseline_set"),
        (["baseline", "accept", "--feature", "f"], "cmd_baseline_accept"),
        (["baseline", "list", "--feature", "f", "--json"], "cmd_baseline_list"),
        (["serve", "--port", "0"], "cmd_serve"),
        (["token", "create", "--role", "review", "--name", "n"], "cmd_token_create"),
        (["token", "revoke", "--name", "n"], "cmd_token_revoke"),
        (["pull", "dir"], "cmd_pull"),
        (["retention", "--days", "30"], "cmd_retention"),
        (["status", "--json"], "cmd_status"),
        (["brief", "--feature", "f"], "cmd_brief"),
        (["report", "--feature", "f", "--week", "2026-03-02"], "cmd_report"),
        (["digest", "--feature", "f"], "cmd_digest"),
        (["drift", "a", "b"], "cmd_drift"),
        (["demo", "--no-serve"], "cmd_demo"),
    ],
)
def test_every_command_parses_to_its_own_handler(argv: list[str], handler: str) -> None:
    assert build_parser().parse_args(argv).handler.__name__ == handler


def test_a_group_without_its_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token"])
    assert exit_info.value.code == EXIT_USAGE
    assert "the following arguments are required: SUBCOMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (ConfigError("bad config"), EXIT_USAGE, "aiqm: bad config\n"),
        (InputError("bad input"), EXIT_USAGE, "aiqm: bad input\n"),
        (NotFound("no such feature"), EXIT_USAGE, "aiqm: no such feature\n"),
        (MonitorError("the store failed"), EXIT_ERROR, "aiqm: the store failed\n"),
        (KeyboardInterrupt(), 130, "aiqm: interrupted\n"),
        (BrokenPipeError(), EXIT_OK, ""),
    ],
)
def test_main_turns_errors_into_exit_codes(
    error: BaseException,
    code: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(_args: argparse.Namespace) -> int:
        raise error

    def add_failing(commands: Commands) -> None:
        add_command(commands, "fail", failing, "fails")

    monkeypatch.setattr(entry, "COMMANDS", (*entry.COMMANDS, add_failing))
    assert main(["fail"]) == code
    assert capsys.readouterr().err == said


def test_python_dash_m_monitor_is_aiqm() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == EXIT_OK
    assert done.stdout.startswith("usage: aiqm [-h] COMMAND ...")
