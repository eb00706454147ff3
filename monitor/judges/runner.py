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
from dataclasses import dataclass
from datetime import datetime

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
from monitor.store.judge_queries import JudgeCall, OutputToJudge

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
        with self.engine.connect() as conn:
            stored = jq.outputs_to_judge(conn, feature, output_ids)
            earlier = jq.judge_calls_of(conn, feature, at)
        cycle = _CycleCalls.of(feature, at, self.settings.feature(feature).judge_budget_usd, earlier)
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
            labels += self._run_judge(cycle, judge, judge_settings.kind == "llm", items)
        return labels

    def _run_judge(
        self, cycle: _CycleCalls, judge: Judge, paid: bool, items: Sequence[JudgeInput]
    ) -> list[LabelRecord]:
        """One judge over the items: verdicts recorded before are reused, a paid judge stops at
        the budget, and every new call is recorded (a paid one at once)."""
        labels: list[LabelRecord] = []
        pending: list[JudgeCall] = []
        exhausted = False
        # What this judge's calls cost so far this cycle: the next call is expected to cost the mean.
        costs = [float(c.cost_usd) for c in cycle.earlier if c.judge == judge.name and c.cost_usd]
        for item in items:
            key = (judge.name, item.output_id)
            if key in cycle.done:
                call = cycle.done[key]
                assert call.verdict is not None
                labels.append(self._record(cycle.feature, key, call.verdict, call.rationale))
                continue
            expected = sum(costs) / len(costs) if costs else judge.estimate_cost_usd(item)
            if not exhausted and paid and cycle.spent + expected > cycle.budget:
                exhausted = True
                log.warning(
                    "%s: judge %s stopped: budget exhausted (%.4f of %.4f USD spent this cycle)",
                    cycle.feature,
                    judge.name,
                    cycle.spent,
                    cycle.budget,
                )
            if exhausted:
                if key not in cycle.exhausted_before:
                    pending.append(self._judge_call(cycle, key, error=BUDGET_EXHAUSTED))
                continue
            verdict, error, cost, latency = self._call(judge, item)
            cycle.spent += cost
            if cost:
                costs.append(cost)
            pending.append(
                self._judge_call(cycle, key, verdict=verdict, error=error, cost=cost, latency=latency)
            )
            if verdict is not None:
                labels.append(self._record(cycle.feature, key, verdict.verdict, verdict.rationale))
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

    def _judge_call(
        self,
        cycle: _CycleCalls,
        key: tuple[str, str],
        *,
        verdict: JudgeVerdict | None = None,
        error: str | None = None,
        cost: float = 0.0,
        latency: float | None = None,
    ) -> JudgeCall:
        judge, output_id = key
        return JudgeCall(
            feature=cycle.feature,
            cycle_at=cycle.at,
            judge=judge,
            output_id=output_id,
            verdict=verdict.verdict if verdict else None,
            rationale=verdict.rationale if verdict else None,
            cost_usd=cost,
            latency_ms=latency,
            error=error,
            at=self.clock(),
        )

    def _flush(self, pending: list[JudgeCall]) -> None:
        if pending:
            with self.engine.begin() as conn:
                jq.add_judge_calls(conn, pending)
            pending.clear()

    def _record(self, feature: str, key: tuple[str, str], verdict: str, rationale: str | None) -> LabelRecord:
        """The label a judge's verdict on an output (`key`: judge, output id) gives."""
        judge, output_id = key
        return LabelRecord(
            output_id=output_id,
            feature=feature,
            verdict=verdict,  # type: ignore[arg-type]  # a judge's verdict: pass, fail or unsure
            source=f"judge:{judge}",
            reason=rationale or None,
            ts=self.clock(),
        )


@dataclass
class _CycleCalls:
    """The cycle's judge calls: those recorded before this run, and its spending so far."""

    feature: str
    at: datetime
    budget: float
    earlier: list[JudgeCall]
    spent: float
    done: dict[tuple[str, str], JudgeCall]
    """(judge, output id) -> the latest recorded call with a verdict."""
    exhausted_before: set[tuple[str, str]]
    """(judge, output id) already recorded as stopped by the budget."""

    @classmethod
    def of(cls, feature: str, at: datetime, budget: float, earlier: list[JudgeCall]) -> _CycleCalls:
        return cls(
            feature=feature,
            at=at,
            budget=budget,
            earlier=earlier,
            spent=sum(float(c.cost_usd or 0.0) for c in earlier),
            done={(c.judge, c.output_id): c for c in earlier if c.verdict is not None},
            exhausted_before={(c.judge, c.output_id) for c in earlier if c.error == BUDGET_EXHAUSTED},
        )


def _judge_input(stored: OutputToJudge) -> JudgeInput:
    versions = {
        name: value
        for name, value in (
            ("model_version", stored.model_version),
            ("config_version", stored.config_version),
        )
        if value is not None
    }
    return JudgeInput(
        output_id=stored.output_id,
        input=stored.input,
        output=stored.output,
        segment=stored.segment or {},
        signals=stored.signals or {},
        versions=versions,
    )
