"""What every `aiqm` command shares: exit codes, the clock, stderr, and how a command and its
`--config` option are declared."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "Commands",
    "Handler",
    "add_command",
    "add_group",
    "config_option",
    "err",
    "utc_now",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

Handler: TypeAlias = Callable[[argparse.Namespace], int]
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where commands are added: the top level's subcommands, or a group's (`aiqm token ...`)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def err(text: str) -> None:
    print(text, file=sys.stderr)


def add_command(parent: Commands, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A command whose help and description are `help_text`, run by `handler`."""
    command: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command


def _usage(_args: argparse.Namespace) -> int:
    return EXIT_USAGE  # a group without its subcommand (argparse refuses that first)


def add_group(parent: Commands, name: str, help_text: str, dest: str) -> Commands:
    """A command that only groups subcommands (`aiqm baseline set|accept|list`)."""
    group = add_command(parent, name, _usage, help_text)
    return group.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")


def config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", type=Path, default=None, help="YAML configuration (or AIQM_CONFIG)")
