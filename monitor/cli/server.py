"""`aiqm serve` (the daemon), `aiqm demo` (a synthetic history to look at), `aiqm token create|revoke`."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.cli.common import EXIT_OK, Commands, add_command, add_group, config_option, err, utc_now
from monitor.errors import NotFound

__all__ = [
    "add_demo",
    "add_serve",
    "add_token",
    "cmd_demo",
    "cmd_serve",
    "cmd_token_create",
    "cmd_token_revoke",
]


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo.run import run_demo

    return run_demo(weeks=args.weeks, data_dir=args.data_dir, serve=not args.no_serve, port=args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import serve

    return serve(load_settings(args.config), args.host, args.port)


def cmd_token_create(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.daemon.tokens import create_token

    engine = open_store(load_settings(args.config))
    token = create_token(engine, args.name, args.role, utc_now())
    print(token)
    err(
        f"token {args.name!r} with role {args.role!r} created; it is shown only this once "
        "(the store keeps its sha256). Send it as: Authorization: Bearer <token>"
    )
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from monitor.config import load_settings
    from monitor.daemon.app import open_store
    from monitor.daemon.tokens import revoke_token

    if not revoke_token(open_store(load_settings(args.config)), args.name, utc_now()):
        raise NotFound(f"no token named {args.name!r} (or it was revoked already)")
    err(f"token {args.name!r} revoked")
    return EXIT_OK


# --------------------------------------------------------------------------- the parsers


def add_demo(commands: Commands) -> None:
    demo = add_command(
        commands, "demo", cmd_demo, "a synthetic history on a temporary SQLite store, and what to open"
    )
    demo.add_argument("--weeks", type=int, default=16, help="weeks of history (default 16)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the demo store here")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="set up and print, without serving")


def add_serve(commands: Commands) -> None:
    serve = add_command(commands, "serve", cmd_serve, "the daemon: scheduler, HTTP API and review page")
    serve.add_argument("--host", default=None, help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port (default: server.port, 8000; 0: any free)"
    )
    config_option(serve)


def add_token(commands: Commands) -> None:
    token = add_group(commands, "token", "API tokens", "token_command")
    token_create = add_command(
        token, "create", cmd_token_create, "mint a token; prints it once on standard output"
    )
    token_create.add_argument("--role", required=True, choices=("ingest", "review", "read", "admin"))
    token_create.add_argument("--name", required=True, help="who or what holds it (unique)")
    config_option(token_create)
    token_revoke = add_command(
        token, "revoke", cmd_token_revoke, "revoke a token made by `aiqm token create`"
    )
    token_revoke.add_argument("--name", required=True)
    config_option(token_revoke)
