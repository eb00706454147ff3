"""`aiqm demo`: the whole job on the embedded default, in a few seconds.

A data directory (a new temporary one, or `--data-dir`) gets a SQLite store and a config file;
the simulator writes a few months of history for three features (one steady, one sliding, one
broken by a prompt change), ending last week; the outputs are ingested as `aiqm ingest` would,
and every weekly cycle of that history is replayed through the same `CycleRunner` as the
daemon, with a simulated clock and reviewers who label what the sampler draws the way the
simulated labels say. The store ends up with cycles, baselines, triggers and modes; what to
look at next is printed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import Engine

from monitor.config import Settings, load_settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock, cycle_times
from monitor.cycle.runner import CycleRunner
from monitor.daemon.tokens import create_token
from monitor.demo.fake_llm import FakeGrader
from monitor.demo.simulate import WEEK, HistorySpec, demo_specs, true_rates, write_history
from monitor.demo.texts import QUEUES
from monitor.errors import InputError
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.judges.runner import JudgeLabeller
from monitor.records import LabelRecord
from monitor.reporting.status import collect_status, format_status
from monitor.store import cycle_queries as q
from monitor.store.engine import make_engine, migrate

MIN_WEEKS, MAX_WEEKS = 6, 104
CYCLE_HOUR = 6  # the default schedule: Mondays 06:00 UTC
OWNERS = {
    "support-reply": ("support-quality@example.com", "head-of-support@example.com"),
    "ticket-triage": ("ops-ml@example.com", "ops-lead@example.com"),
    "summarizer": ("summaries-team@example.com", "product-owner@example.com"),
}


def history_end(now: datetime) -> datetime:
    """The latest Monday 00:00 UTC whose 06:00 cycle has already run: the history ends there."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday if monday + timedelta(hours=CYCLE_HOUR) <= now else monday - WEEK


LLM_JUDGE = "grader"
RUBRICS = {
    "support-reply": "A passing reply answers the customer's question correctly under our policies (refunds "
    "within 30 days, no promised delivery dates, never ask for card details), politely and completely.",
    "ticket-triage": "A passing label sends the ticket to the queue for its topic: billing (refunds, "
    "invoices), shipping (delays, order status), account (log-in, passwords), returns (damaged items).",
    "summarizer": "A passing summary states only what happened in the conversation, with the next step; "
    "it invents nothing.",
}
RULE_JUDGES: dict[str, dict[str, Any]] = {
    "support-reply": {
        "kind": "pattern",
        "name": "policy-phrases",
        "must_not": [r"card number", r"security code", r"can't help", r"guarantee"],
        "ignore_case": True,
    },
    "ticket-triage": {
        "kind": "json",
        "name": "label-schema",
        "schema": {
            "type": "object",
            "required": ["queue", "priority"],
            "properties": {"queue": {"enum": list(QUEUES)}, "priority": {"enum": ["high", "normal"]}},
        },
    },
    "summarizer": {"kind": "length", "name": "length", "min_chars": 40, "max_chars": 420},
}
GRADER_WEEKS = 4
"""The simulated LLM judge was switched on this many weeks before the history ends (the rule
judges run from the start): enough cycles for its agreement, cost and the judge-backed estimate,
and the demo stays quick (each call is a real HTTP request to the simulated model)."""
UNREVIEWED_SHARE = 0.5
"""Of the current week's sample, the share the simulated reviewers leave for the newcomer."""


class Judges:
    """The configured judges as the daemon runs them (`JudgeLabeller`); before `since`, only the
    rule judges (the LLM judge was switched on later, see `GRADER_WEEKS`)."""

    def __init__(
        self, engine: Engine, settings: Settings, clock: SimulatedClock, http: httpx.Client, since: datetime
    ) -> None:
        self.all = JudgeLabeller(engine, settings, clock, http)
        self.rules = JudgeLabeller(engine, settings, clock, http, llm=False)
        self.since = since

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]:
        return (self.all if at >= self.since else self.rules).label(feature, output_ids, at)


class Reviewers:
    """The simulated reviewers: they label what the cycle draws the way the history's labels say,
    except in each feature's last cycle, where they leave `UNREVIEWED_SHARE` of it unlabelled."""

    def __init__(self, recorded: RecordedReviewers, last: dict[str, datetime]) -> None:
        self.recorded = recorded
        self.last = last

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]:
        if self.last.get(feature) == at:
            output_ids = output_ids[: round(len(output_ids) * (1 - UNREVIEWED_SHARE))]
        return self.recorded.label(feature, output_ids, at)


STEADY_WITHIN = 0.01  # a true pass rate that moves less than a point over the history is steady


def _describe(spec: HistorySpec) -> str:
    rates = true_rates(spec)
    versions = sorted(spec.config_versions.items()) + sorted(spec.model_versions.items())
    changes = [f"{name} in week {week + 1}" for week, name in versions if week > 0]
    trend = (
        f"true pass rate steady at {rates[0]:.0%}"
        if max(rates) - min(rates) < STEADY_WITHIN
        else f"true pass rate {rates[0]:.0%} in week 1, {rates[-1]:.0%} in week {spec.weeks}"
    )
    return trend + (f"; {', '.join(changes)} went live" if changes else "")


def _choose_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="aiqm-demo-")).resolve()
    folder = data_dir.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError("is not a directory", source=str(folder), field="--data-dir")
    if folder.exists() and any(folder.iterdir()):
        raise InputError(
            "is not empty; the demo writes a new store, give it a new or empty directory",
            source=str(folder),
            field="--data-dir",
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _split_for_drift(outputs: Path, start: datetime, weeks: int, folder: Path) -> tuple[Path, Path]:
    """The first four weeks and the last week of a feature's outputs, as two files for `aiqm drift`."""
    before, after = folder / "first-4-weeks.jsonl", folder / "last-week.jsonl"
    last_week = start + (weeks - 1) * WEEK
    first_weeks = start + 4 * WEEK
    with (
        open(outputs, encoding="utf-8") as source,
        open(before, "w", encoding="utf-8") as early,
        open(after, "w", encoding="utf-8") as late,
    ):
        for line in source:
            ts = datetime.fromisoformat(json.loads(line)["ts"])
            if ts < first_weeks:
                early.write(line)
            elif ts >= last_week:
                late.write(line)
    return before, after


def _judges(feature: str, grader_url: str) -> list[dict[str, Any]]:
    """The feature's rule judge and the simulated LLM judge (`monitor.demo.fake_llm`)."""
    llm = {
        "kind": "llm",
        "name": LLM_JUDGE,
        "base_url": grader_url,
        "model": "demo-grader-1",
        "rubric": RUBRICS.get(feature, RUBRICS["support-reply"]),
        "price_per_1k_input_tokens": 0.00015,
        "price_per_1k_output_tokens": 0.0006,
        "timeout_seconds": 5,
        "max_retries": 1,
    }
    return [RULE_JUDGES.get(feature, RULE_JUDGES["support-reply"]), llm]


def _write_config(folder: Path, database_url: str, specs: Sequence[HistorySpec], grader_url: str) -> Path:
    config = {
        "database_url": database_url,
        "data_dir": str(folder),
        "features": {
            spec.feature: {
                "owner": OWNERS.get(spec.feature, ("demo-owner@example.com", ""))[0],
                "decision_owner": OWNERS.get(spec.feature, ("", "demo-lead@example.com"))[1],
                "fallback_behaviour": "the feature is hidden and people do the task by hand",
                "judges": _judges(spec.feature, grader_url),
            }
            for spec in specs
        },
    }
    path = folder / "aiqm.yaml"
    header = (
        "# Written by `aiqm demo`: the demo's store, its features' owners and judges. The `grader`\n"
        "# judge is the demo's simulated model on loopback; it answers only while `aiqm demo` runs.\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def build_demo(weeks: int, folder: Path, now: datetime, grader_url: str) -> dict[str, Any]:
    """Write, ingest and replay the demo history in `folder` (the LLM judge at `grader_url`);
    returns what was made where, with a token of each role to try the daemon with."""
    end = history_end(now)
    specs = [replace(spec, start=end - spec.weeks * WEEK) for spec in demo_specs(weeks)]
    database_url = f"sqlite:///{folder / 'aiqm.sqlite3'}"
    config_path = _write_config(folder, database_url, specs, grader_url)
    settings = load_settings(config_path)
    engine = make_engine(database_url)  # never AIQM_DATABASE_URL: the demo must not touch a real store
    try:
        migrate(engine)
        clock = SimulatedClock(now)
        verdicts: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        files: dict[str, dict[str, Path]] = {}
        for spec in specs:
            history = folder / "history" / spec.feature
            outputs, labels, _count = write_history(spec, history)
            reference, current = _split_for_drift(outputs, spec.start, spec.weeks, history)
            files[spec.feature] = {
                "outputs": outputs,
                "labels": labels,
                "reference": reference,
                "current": current,
            }
            import_file(engine, str(outputs), OUTPUTS, clock)
            verdicts.update(RecordedReviewers.from_file(str(labels)).verdicts)
        schedule = _schedule(engine, settings, specs, now)
        last = {name: at for at, name in sorted(schedule)}
        with httpx.Client() as http:
            judges = Judges(engine, settings, clock, http, max(last.values()) - (GRADER_WEEKS - 1) * WEEK)
            reviewers = Reviewers(RecordedReviewers(verdicts), last)
            runner = CycleRunner(engine, settings, clock, labellers=[judges, reviewers])
            for at, name in sorted(schedule):
                clock.now = at
                runner.run(name, at)
        clock.now = now
        status = collect_status(engine, settings, now)
        tokens = {
            role: create_token(engine, f"demo-{role}", role, now) for role in ("admin", "review", "read")
        }
    finally:
        engine.dispose()
    return {
        "config": config_path,
        "database_url": database_url,
        "files": files,
        "specs": specs,
        "status": status,
        "cycles": len(schedule),
        "tokens": tokens,
    }


def _schedule(
    engine: Engine, settings: Settings, specs: Sequence[HistorySpec], now: datetime
) -> list[tuple[datetime, str]]:
    """Every feature's weekly cycles over its history, up to `now`."""
    schedule: list[tuple[datetime, str]] = []
    with engine.connect() as conn:
        for spec in specs:
            row = q.feature_row(conn, spec.feature)
            assert row is not None and row["first_output_ts"] is not None
            feature = settings.feature(spec.feature)
            times = cycle_times(
                feature.schedule, feature.window_days, row["first_output_ts"], row["last_output_ts"]
            )
            schedule.extend((at, spec.feature) for at in times if at <= now)
    return schedule


def _commands(folder: Path, config: Path, files: dict[str, dict[str, Path]]) -> list[tuple[str, str]]:
    """(command, what it shows), with absolute paths so that they work from any directory."""
    focus = "summarizer" if "summarizer" in files else next(iter(files))
    chosen = files[focus]
    return [
        (f"aiqm status --config {config}", "each feature's mode, triggers, last pass rate and baseline"),
        (f"aiqm status --json --config {config}", "the same, as JSON"),
        (
            f"aiqm backtest --outputs {chosen['outputs']} --labels {chosen['labels']} --config {config}",
            f"replay {focus}'s history cycle by cycle (add --json for CONTRACT section 5's shape)",
        ),
        (
            f"aiqm drift {chosen['reference']} {chosen['current']}",
            f"{focus}'s last week against its first four, signal by signal",
        ),
        (f"aiqm baseline list --feature {focus} --config {config}", "its baselines, and the open proposal"),
        (
            f"aiqm baseline accept --feature {focus} --config {config}",
            "adopt the proposed baseline (after its prompt change)",
        ),
        (f"aiqm cycle --config {config}", "run this week's cycle now (idempotent: run it twice)"),
    ]


def serve_demo(made: dict[str, Any], specs: Sequence[HistorySpec], port: int) -> int:
    """Serve the demo store on 127.0.0.1:`port` until Ctrl-C or SIGTERM, with tokens to try it."""
    from monitor.daemon.app import build_services, serve

    settings = load_settings(made["config"]).model_copy(update={"database_url": made["database_url"]})
    engine = make_engine(made["database_url"])
    tokens: dict[str, str] = made["tokens"]
    focus = "summarizer" if any(s.feature == "summarizer" for s in specs) else specs[0].feature
    services = build_services(settings, engine=engine)

    def ready(url: str) -> None:
        admin = tokens["admin"]
        print(
            f"""
quality page    {url}/quality   (sign in with the read, review or admin token)

The daemon serves the demo store on {url} until Ctrl-C:

  quality page    {url}/quality
  review page     {url}/review   (sign in with the review token: this week's sample is half reviewed)
  status          {url}/v1/features/{focus}/status
  API schema      {url}/docs
  admin token     {admin}
  review token    {tokens["review"]}
  read token      {tokens["read"]}   (what an app polls its mode with)

Try:
  curl -H "Authorization: Bearer {tokens["read"]}" {url}/v1/features/{focus}/status
  curl -X POST -H "Authorization: Bearer {tokens["read"]}" {url}/ofrep/v1/evaluate/flags/{focus}
  curl -X POST -H "Authorization: Bearer {admin}" -H "Content-Type: application/json" \\
       -d '{{"mode": "off", "reason": "trying the off switch"}}' {url}/v1/features/{focus}/override
  curl -X DELETE -H "Authorization: Bearer {admin}" {url}/v1/features/{focus}/override
""",
            flush=True,
        )

    return serve(settings, "127.0.0.1", port, services=services, on_ready=ready)


def quality_address(port: int) -> str:
    """Where the quality page is (the daemon listens on loopback); port 0: chosen when it listens."""
    return f"http://127.0.0.1:{port}/quality" if port else "http://127.0.0.1:<a free port>/quality"


def run_demo(weeks: int = 16, data_dir: Path | None = None, serve: bool = True, port: int = 8000) -> int:
    """`aiqm demo`: set up the demo store, print where it is and what to try; 0 on success."""
    if not MIN_WEEKS <= weeks <= MAX_WEEKS:
        raise InputError(
            f"must be between {MIN_WEEKS} and {MAX_WEEKS} (a baseline takes four weekly cycles)",
            field="--weeks",
        )
    started = time.perf_counter()
    folder = _choose_dir(data_dir)
    when = "once the setup below is done" if serve else f"after: aiqm serve --config {folder / 'aiqm.yaml'}"
    print(f"quality page    {quality_address(port)}   ({when})", flush=True)
    print(f"aiqm demo: writing {weeks} weeks of synthetic history into {folder} ...", flush=True)
    with FakeGrader() as grader:
        made = build_demo(weeks, folder, datetime.now(UTC), grader.base_url)
        _report(made, folder, time.perf_counter() - started)
        if not serve:
            tokens = made["tokens"]
            print(
                f"\nServe it with `aiqm serve --config {made['config']} --port {port or 8000}`, then open "
                f"the quality page and /review:\n"
                f"  read token      {tokens['read']}\n  review token    {tokens['review']}\n"
                f"  admin token     {tokens['admin']}"
            )
            return 0
        return serve_demo(made, made["specs"], port)


def _report(made: dict[str, Any], folder: Path, elapsed: float) -> None:
    """What was made, what was simulated, what the monitor says, and what to try."""
    specs: list[HistorySpec] = made["specs"]
    outputs = sum(made["status"]["features"][s.feature]["outputs"] for s in specs)
    print(
        f"ready in {elapsed:.1f} s: {outputs:,} outputs of {len(specs)} features ingested, "
        f"{made['cycles']} weekly cycles replayed with a rule judge, a simulated LLM judge ({LLM_JUDGE}) "
        "and simulated reviewers (who left half of this week's sample for you)\n"
    )
    print(f"  data directory  {folder}")
    print(f"  configuration   {made['config']}")
    print(f"  store           {made['database_url']}")
    print(f"  history         {folder / 'history'}/<feature>/outputs.jsonl, labels.jsonl\n")
    print("What was simulated (the truth the monitor did not see):")
    for spec in specs:
        print(f"  {spec.feature:14s} {_describe(spec)}")
    print("\nWhat the monitor says now:\n")
    print(format_status(made["status"]))
    print("\nTry next:")
    for command, what in _commands(folder, made["config"], made["files"]):
        print(f"  {command}\n      {what}")
    if os.environ.get("AIQM_DATABASE_URL"):
        print(
            "\nnote: AIQM_DATABASE_URL is set in this shell and wins over --config; "
            "unset it to look at the demo's store",
            file=sys.stderr,
        )
