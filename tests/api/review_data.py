"""What the review page's tests share: a store with a drawn sample, the daemon's services, tokens.

The sample is drawn by the real cycle (`CycleRunner.run`), so the page reads what production
writes. Some outputs carry hostile text (markup and SQL) in every field a reviewer sees.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, insert, select

from monitor.api.app import create_app
from monitor.config import FeatureSettings, Settings
from monitor.cycle.result import CycleResult
from monitor.cycle.runner import CycleRunner, pass_rate_columns
from monitor.daemon.services import Services
from monitor.daemon.tokens import TokenBook, create_token
from monitor.decide.quality import ScopeQuality
from monitor.records import LabelRecord, validate_output
from monitor.store import cycle_queries as q
from monitor.store import review_queries as rq
from monitor.store.tables import judge_runs, labels, review_flags
from monitor.store.writes import insert_labels, insert_outputs

FEATURE = "support-bot"
OTHER = "summarizer"  # configured, but nothing logged: its page is empty
CYCLE_AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # Monday 06:00, the default schedule
SCRIPT = "<script>alert(1)</script>"
SQL = "'; DROP TABLE labels;--"
OUTPUTS = 6


class Clock:
    """A clock the test moves by hand (the page measures review time with it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Tokens:
    review: str
    admin: str
    read: str
    ingest: str
    extra: dict[str, str] = field(default_factory=dict)


def output(index: int) -> dict[str, Any]:
    """The `index`th logged output; the first two carry hostile text."""
    ts = (CYCLE_AT - timedelta(days=6, hours=index)).isoformat().replace("+00:00", "Z")
    record: dict[str, Any] = {
        "id": f"out-{index}",
        "feature": FEATURE,
        "ts": ts,
        "input": f"Customer question number {index}: where is my parcel?",
        "output": f"Answer {index}: it ships tomorrow.",
        "model_version": "gpt-x-2026-01",
        "config_version": "prompt-v7",
        "segment": {"language": "en" if index % 2 else "de"},
        "signals": {"confidence": 0.5 + index / 20, "latency_ms": 800 + index},
        "user_action": "accepted",
    }
    if index == 0:
        record.update(input=SCRIPT, output=SQL, segment={"language": SCRIPT}, config_version=SQL)
    if index == 1:
        record.update(input={"question": SQL, "html": SCRIPT}, output=SCRIPT, model_version=SCRIPT)
    return record


def seed(engine: Engine, clock: Clock) -> Settings:
    """Log the outputs, run the cycle that draws them all, add a judge's verdict (and a judge's
    failed call); return the settings."""
    settings = Settings(
        features={
            FEATURE: FeatureSettings(owner="ana@example.com"),
            OTHER: FeatureSettings(owner="bo@example.com"),
        }
    )
    records = [validate_output(output(i)) for i in range(OUTPUTS)]
    with engine.begin() as conn:
        insert_outputs(conn, records, clock())
    CycleRunner(engine, settings, clock).run(FEATURE, CYCLE_AT)
    with engine.begin() as conn:
        insert_labels(
            conn,
            [
                LabelRecord(
                    output_id="out-2",
                    feature=FEATURE,
                    verdict="fail",
                    source="judge:rubric",
                    score=0.2,
                    reason=f"Promises a date it cannot know {SCRIPT}",
                )
            ],
            clock(),
        )
        run = {"feature": FEATURE, "cycle_at": CYCLE_AT, "at": clock(), "latency_ms": 900.0}
        conn.execute(
            insert(judge_runs),
            [
                {
                    **run,
                    "judge": "rubric",
                    "output_id": "out-2",
                    "verdict": "fail",
                    "cost_usd": 0.0012,
                    "error": None,
                },
                {
                    **run,
                    "judge": "llm",
                    "output_id": "out-3",
                    "verdict": None,
                    "cost_usd": 0.0,
                    "error": f"timeout {SCRIPT}",
                },
            ],
        )
    return settings


def services_for(engine: Engine, settings: Settings, clock: Clock) -> Services:
    return Services(
        engine=engine,
        settings=settings,
        runner=CycleRunner(engine, settings, clock),
        clock=clock,
        tokens=TokenBook(settings, engine),
        session_secret=secrets.token_bytes(32),
    )


def app_for(services: Services) -> FastAPI:
    """The daemon's whole app, as `aiqm serve` serves it."""
    return create_app(services)


def mint_tokens(engine: Engine, now: datetime) -> Tokens:
    return Tokens(
        review=create_token(engine, "rita reviewer", "review", now),
        admin=create_token(engine, "ada", "admin", now),
        read=create_token(engine, "otto", "read", now),
        ingest=create_token(engine, "ian", "ingest", now),
    )


def human_labels(engine: Engine) -> dict[str, dict[str, Any]]:
    """The stored human labels by output id."""
    query = select(labels).where(labels.c.feature == FEATURE, labels.c.source_kind == "human")
    with engine.connect() as conn:
        return {row["output_id"]: dict(row) for row in conn.execute(query).mappings()}


def flags(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(review_flags).order_by(review_flags.c.pk)).mappings()]


def queue_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [item.output_id for item in rq.queue(conn, FEATURE, CYCLE_AT)]


def answered(engine: Engine, now: datetime, labelled: int, worth: float, saved: dict[str, float]) -> None:
    """Restate the seeded cycle as if `labelled` human labels had answered it, worth `worth`
    with the judges (each judge in `saved` worth that many labels; none: humans alone)."""
    judged = {"judge_weight": 0.8, "judges_saved": saved} if saved else {}
    overall = ScopeQuality.from_json(
        "all",
        {
            "value": 0.75,
            "low": 0.5,
            "high": 0.9,
            "labelled": labelled,
            "passes_eff": 0.75 * worth,
            "n_eff": worth,
            "method": "ppi" if saved else "wilson",
            **judged,
        },
    )
    with engine.begin() as conn:
        row = q.cycle_row(conn, FEATURE, CYCLE_AT)
        assert row is not None and row["status"] == "done"
        result = replace(CycleResult.from_json(row["result"]), quality={"all": overall}, measured=True)
        values = {**pass_rate_columns(result.overall), "result": result.to_json()}
        q.restate_cycle(conn, FEATURE, CYCLE_AT, values, now)
