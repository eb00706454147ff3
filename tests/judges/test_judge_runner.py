"""The judges' cycle labeller on both stores: every call recorded, the budget kept, failures survived,
nothing paid twice when a cycle is run again, and the labels landing through the cycle."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from chat_api import ChatServer, Reply, completion, verdict
from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.cycle.backtest import SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.judges import build_labellers
from monitor.judges.rules import RefusalJudge
from monitor.judges.runner import BUDGET_EXHAUSTED, JudgeLabeller
from monitor.records import OutputRecord
from monitor.store import judge_queries as jq
from monitor.store.tables import labels
from monitor.store.writes import insert_outputs

FEATURE = "replies"
AT = datetime.fromisoformat("2026-03-02T06:00:00+00:00")
IDS = [f"o-{i}" for i in range(6)]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def store_outputs(engine: Engine, count: int = 6) -> None:
    records = [
        OutputRecord(
            id=f"o-{i}",
            feature=FEATURE,
            ts=AT - timedelta(days=1, minutes=i),
            input=f"question {i}",
            output="I'm sorry, but I can't help with that." if i % 3 == 0 else f"Here is answer {i}.",
            segment={"language": "en"},
            signals={"confidence": 0.5},
            model_version="m-1",
        )
        for i in range(count)
    ]
    with engine.begin() as conn:
        insert_outputs(conn, records, AT - timedelta(days=1))


def settings_for(server: ChatServer | None, budget: float = 5.0, **llm: Any) -> Settings:
    judges: list[dict[str, Any]] = [{"kind": "refusal"}]
    if server is not None:
        judges.append(
            {
                "kind": "llm",
                "name": "grader",
                "base_url": server.base_url,
                "model": "m",
                "rubric": "helpful",
                "price_per_1k_input_tokens": 0.01,
                "max_retries": 0,
                **llm,
            }
        )
    return Settings.model_validate({"features": {FEATURE: {"judges": judges, "judge_budget_usd": budget}}})


def runs(engine: Engine) -> list[jq.JudgeCall]:
    with engine.connect() as conn:
        return jq.judge_calls_of(conn, FEATURE, AT)


def test_every_call_is_recorded_and_labels_come_from_each_judge(
    engine: Engine, chat_server: ChatServer, http: httpx.Client
) -> None:
    store_outputs(engine)
    chat_server.default = lambda _seen: verdict("pass", "helpful", prompt_tokens=500, completion_tokens=0)
    labeller = JudgeLabeller(engine, settings_for(chat_server), SimulatedClock(AT), http)
    records = labeller.label(FEATURE, IDS, AT)
    by_source: dict[str, dict[str, str]] = {}
    for record in records:
        by_source.setdefault(record.source, {})[record.output_id] = record.verdict
        assert record.reason
    assert by_source["judge:refusal"] == {i: ("fail" if n % 3 == 0 else "pass") for n, i in enumerate(IDS)}
    assert by_source["judge:grader"] == dict.fromkeys(IDS, "pass")
    recorded = runs(engine)
    assert len(recorded) == 12
    grader = [r for r in recorded if r.judge == "grader"]
    assert all(r.cost_usd == pytest.approx(0.005) and r.error is None for r in grader)
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in grader)
    assert all(r.cost_usd == 0 for r in recorded if r.judge == "refusal")
    assert len(chat_server.requests) == 6


def test_the_budget_stops_the_paid_judge_and_says_so(
    engine: Engine, chat_server: ChatServer, http: httpx.Client
) -> None:
    store_outputs(engine)
    chat_server.default = lambda _seen: verdict("pass", prompt_tokens=1000, completion_tokens=0)  # 0.01 each
    labeller = JudgeLabeller(engine, settings_for(chat_server, budget=0.035), SimulatedClock(AT), http)
    records = labeller.label(FEATURE, IDS, AT)
    assert len(chat_server.requests) == 3  # 0.03 spent; a fourth call would pass 0.035
    assert sum(r.source == "judge:grader" for r in records) == 3
    assert sum(r.source == "judge:refusal" for r in records) == 6  # free judges are never stopped
    grader = [r for r in runs(engine) if r.judge == "grader"]
    assert [r.error for r in grader] == [None] * 3 + [BUDGET_EXHAUSTED] * 3
    assert sum(r.cost_usd for r in grader) == pytest.approx(0.03)


def test_running_the_cycle_again_pays_for_nothing_twice(
    engine: Engine, chat_server: ChatServer, http: httpx.Client
) -> None:
    store_outputs(engine)
    chat_server.default = lambda _seen: verdict("fail", "unhelpful", prompt_tokens=1000, completion_tokens=0)
    settings = settings_for(chat_server, budget=0.035)
    first = JudgeLabeller(engine, settings, SimulatedClock(AT), http).label(FEATURE, IDS, AT)
    recorded = runs(engine)
    again = JudgeLabeller(engine, settings, SimulatedClock(AT + timedelta(hours=1)), http).label(
        FEATURE, IDS, AT
    )
    assert len(chat_server.requests) == 3
    assert runs(engine) == recorded
    assert sorted((r.source, r.output_id, r.verdict, r.reason) for r in again) == sorted(
        (r.source, r.output_id, r.verdict, r.reason) for r in first
    )


def test_failures_are_recorded_and_never_stop_the_cycle(
    engine: Engine, chat_server: ChatServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_outputs(engine)
    chat_server.script = [Reply(500, {"error": "down"}), Reply(body=completion("no idea"))]
    chat_server.default = lambda _seen: verdict("pass")

    def broken(self: RefusalJudge, item: Any) -> Any:
        raise RuntimeError("a bug in a judge")

    monkeypatch.setattr(RefusalJudge, "judge", broken)
    records = JudgeLabeller(engine, settings_for(chat_server), SimulatedClock(AT), http).label(
        FEATURE, IDS, AT
    )
    assert {r.source for r in records} == {"judge:grader"}
    assert len(records) == 4
    errors = [r.error for r in runs(engine)]
    assert errors.count("RuntimeError: a bug in a judge") == 6
    assert any(e and e.startswith("HTTP 500") for e in errors)
    assert any(e and "no JSON object with a verdict" in e for e in errors)


class Humans:
    """Reviewers who label every drawn output: pass, except the outputs that refuse."""

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[Any]:
        from monitor.records import LabelRecord

        return [
            LabelRecord(output_id=i, feature=feature, verdict="pass", source="human:ann", ts=at)
            for i in output_ids
        ]


def test_the_cycle_stores_judge_labels_and_their_agreement(engine: Engine) -> None:
    store_outputs(engine, count=30)
    settings = settings_for(None)
    clock = SimulatedClock(AT)
    runner = CycleRunner(engine, settings, clock, [Humans(), *build_labellers(settings, engine, clock)])
    outcome = runner.run(FEATURE, AT)
    with engine.connect() as conn:
        sources = {row[0] for row in conn.execute(select(labels.c.source).where(labels.c.feature == FEATURE))}
    assert sources == {"human:ann", "judge:refusal"}
    agreement = outcome.result.to_json()["judges"]["refusal"]
    assert agreement["n"] == outcome.sampled == 30
    assert agreement["agreement"] == pytest.approx(20 / 30)  # humans pass the 10 refusals the judge fails
    assert agreement["kappa"] == pytest.approx(0.0)  # humans all pass: no agreement beyond chance
    assert agreement["pairs"] == [[20, 10], [0, 0]]
    json.dumps(outcome.result.to_json(), allow_nan=False)  # storable in PostgreSQL's JSONB


def test_build_labellers_only_when_a_feature_has_judges(engine: Engine) -> None:
    clock = SimulatedClock(AT)
    assert build_labellers(Settings(), engine, clock) == []
    llm_only = Settings.model_validate(
        {"features": {FEATURE: {"judges": [{"kind": "llm", "model": "m", "rubric": "r"}]}}}
    )
    assert build_labellers(llm_only, engine, clock, llm=False) == []
    assert len(build_labellers(llm_only, engine, clock)) == 1
