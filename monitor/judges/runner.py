"""Runs a feature's judges over the outputs a cycle draws, within the cycle's budget.

`JudgeLabeller` is a cycle labeller (`label(feature, output_ids, at)`): the cycle calls it as
soon as its sample is drawn and stores the labels it returns (source `judge:<name>`, reason
the judge's rationale). Every call is recorded in `judge_runs` with its verdict, cost, latency
and error. Free (rule) judges run first; a paid judge stops once the cycle's spending plus
its next call's expected cost (the mean of its calls so far this cycle; before the first, the
judge's own estimate from the prompt's size) would pass `judge_budget_usd`, and the outputs it
did not reach are recorded with the error "budget exhausted". A judge that fails on an output (network,
timeouts, nonsense answers, a bug) leaves that output without its verdict and the cycle goes
on. Run again for the same cycle (after a crash), it reuses the verdicts already recorded and
counts what was already spent, so nothing is paid for twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine

from monitor.config import (
    JsonJudgeSettings,
    JudgeSettings,
    LengthJudgeSettings,
    LLMJudgeSettings,
    PatternJudgeSettings,
    RefusalJudgeSettings,
    Settings,
)
from monitor.intake.privacy import redactor_for
from monitor.judges.base import Judge, JudgeError, JudgeInput, JudgeVerdict
from monitor.judges.llm import LLMJudge
from monitor.judges.rules import JsonJudge, LengthJudge, PatternJudge, RefusalJudge
from monitor.records import LabelRecord
from monitor.store import judge_queries as jq

__all__ = ["BUDGET_EXHAUSTED", "JudgeLabeller", "make_judge"]

log = logging.getLogger(__name__)

BUDGET_EXHAUSTED = "budget exhausted"
PAID_FLUSH_EVERY = 1
"""Paid calls are recorded one by one: money spent must be on record even if the process dies."""


def make_judge(
    settings: JudgeSettings, http: httpx.Client | None, sleep: Callable[[float], None] = time.sleep
) -> Judge:
    """The judge a config entry describes (an LLM judge needs the HTTP client)."""
    if isinstance(settings, JsonJudgeSettings):
        return JsonJudge(settings)
    if isinstance(settings, PatternJudgeSettings):
        return PatternJudge(settings)
    if isinstance(settings, LengthJudgeSettings):
        return LengthJudge(settings)
    if isinstance(settings, RefusalJudgeSettings):
        return RefusalJudge(settings)
    if isinstance(settings, LLMJudgeSettings):
        if http is None:
            raise ValueError("an LLM judge needs an HTTP client")
        return LLMJudge(settings, http, sleep=sleep)
    raise TypeError(f"unknown judge settings {type(settings).__name__}")


class JudgeLabeller:
    """The cycle labeller that runs the configured judges (see the module's docstring).

    Without an `http` client, each cycle that needs one (an LLM judge) opens and closes its own.
    With `llm=False` only the rule judges run (the backtest: replaying history must not spend).
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Callable[[], datetime],
        http: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        llm: bool = True,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.http = http
        self.sleep = sleep
        self.llm = llm

    def configured(self, feature: str) -> list[JudgeSettings]:
        """The feature's judges that this labeller runs: free ones first, in config order."""
        judges = [j for j in self.settings.feature(feature).judges if self.llm or j.kind != "llm"]
        return [j for j in judges if j.kind != "llm"] + [j for j in judges if j.kind == "llm"]

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]:
        configured = self.configured(feature)
        if not configured or not output_ids:
            return []
        if self.http is None and any(j.kind == "llm" for j in configured):
            with httpx.Client() as client:
                return self._label(feature, output_ids, at, configured, client)
        return self._label(feature, output_ids, at, configured, self.http)

    def _label(
        self,
        feature: str,
        output_ids: Sequence[str],
        at: datetime,
        configured: Sequence[JudgeSettings],
        http: httpx.Client | None,
    ) -> list[LabelRecord]:
        budget = self.settings.feature(feature).judge_budget_usd
        with self.engine.connect() as conn:
            stored = jq.outputs_to_judge(conn, feature, output_ids)
            earlier = jq.judge_runs_of(conn, feature, at)
        spent = sum(float(r["cost_usd"] or 0.0) for r in earlier)
        done = {(r["judge"], r["output_id"]): r for r in earlier if r["verdict"] is not None}
        exhausted_before = {(r["judge"], r["output_id"]) for r in earlier if r["error"] == BUDGET_EXHAUSTED}
        items = [_judge_input(stored[i]) for i in output_ids if i in stored]
        redactor = redactor_for(self.settings)
        if redactor is not None:  # whatever the store kept, a judge never sees personal data
            items = [
                dataclasses.replace(
                    item, input=redactor.value(item.input), output=redactor.value(item.output)
                )
                for item in items
            ]
        labels: list[LabelRecord] = []
        for judge_settings in configured:
            judge = make_judge(judge_settings, http, self.sleep)
            paid = judge_settings.kind == "llm"
            pending: list[dict[str, Any]] = []
            exhausted = False
            # What this judge's calls cost so far this cycle: the next call is expected to cost the mean.
            costs = [float(r["cost_usd"]) for r in earlier if r["judge"] == judge.name and r["cost_usd"]]
            for item in items:
                key = (judge.name, item.output_id)
                if key in done:
                    run = done[key]
                    labels.append(
                        self._record(feature, judge.name, item.output_id, run["verdict"], run["rationale"])
                    )
                    continue
                expected = sum(costs) / len(costs) if costs else judge.estimate_cost_usd(item)
                if not exhausted and paid and spent + expected > budget:
                    exhausted = True
                    log.warning(
                        "%s: judge %s stopped: budget exhausted (%.4f of %.4f USD spent this cycle)",
                        feature,
                        judge.name,
                        spent,
                        budget,
                    )
                if exhausted:
                    if key not in exhausted_before:
                        pending.append(
                            self._run_row(feature, at, judge.name, item.output_id, error=BUDGET_EXHAUSTED)
                        )
                    continue
                verdict, error, cost, latency = self._call(judge, item)
                spent += cost
                if cost:
                    costs.append(cost)
                pending.append(
                    self._run_row(
                        feature,
                        at,
                        judge.name,
                        item.output_id,
                        verdict=verdict,
                        error=error,
                        cost=cost,
                        latency=latency,
                    )
                )
                if verdict is not None:
                    labels.append(
                        self._record(feature, judge.name, item.output_id, verdict.verdict, verdict.rationale)
                    )
                if paid and len(pending) >= PAID_FLUSH_EVERY:
                    self._flush(pending)
            self._flush(pending)
        return labels

    def _call(self, judge: Judge, item: JudgeInput) -> tuple[JudgeVerdict | None, str | None, float, float]:
        started = time.perf_counter()
        try:
            verdict = judge.judge(item)
        except JudgeError as exc:
            log.warning("judge %s on %s: %s", judge.name, item.output_id, exc)
            return None, str(exc), exc.cost_usd, exc.latency_ms
        except Exception as exc:  # a judge's bug must not stop the cycle: record it and go on
            log.exception("judge %s on %s failed", judge.name, item.output_id)
            return None, f"{type(exc).__name__}: {exc}", 0.0, (time.perf_counter() - started) * 1000
        latency = verdict.latency_ms or (time.perf_counter() - started) * 1000
        return verdict, None, verdict.cost_usd, latency

    def _run_row(
        self,
        feature: str,
        at: datetime,
        judge: str,
        output_id: str,
        *,
        verdict: JudgeVerdict | None = None,
        error: str | None = None,
        cost: float = 0.0,
        latency: float | None = None,
    ) -> dict[str, Any]:
        return {
            "feature": feature,
            "cycle_at": at,
            "judge": judge,
            "output_id": output_id,
            "verdict": verdict.verdict if verdict else None,
            "rationale": verdict.rationale if verdict else None,
            "cost_usd": cost,
            "latency_ms": latency,
            "error": error,
            "at": self.clock(),
        }

    def _flush(self, pending: list[dict[str, Any]]) -> None:
        if pending:
            with self.engine.begin() as conn:
                jq.add_judge_runs(conn, pending)
            pending.clear()

    def _record(
        self, feature: str, judge: str, output_id: str, verdict: str, rationale: str | None
    ) -> LabelRecord:
        return LabelRecord(
            output_id=output_id,
            feature=feature,
            verdict=verdict,  # type: ignore[arg-type]  # a judge's verdict: pass, fail or unsure
            source=f"judge:{judge}",
            reason=rationale or None,
            ts=self.clock(),
        )


def _judge_input(row: dict[str, Any]) -> JudgeInput:
    versions = {k: row[k] for k in ("model_version", "config_version") if row.get(k) is not None}
    return JudgeInput(
        output_id=row["output_id"],
        input=row["input"],
        output=row["output"],
        segment=row["segment"] or {},
        signals=row["signals"] or {},
        versions=versions,
    )
