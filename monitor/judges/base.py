"""The judge protocol: one output in, a verdict with its rationale, cost and latency out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from monitor.errors import MonitorError
from monitor.records import LabelRecord

__all__ = ["Judge", "JudgeError", "JudgeInput", "JudgeVerdict", "Labeller", "Verdict", "as_text"]

Verdict = Literal["pass", "fail", "unsure"]


@dataclass(frozen=True)
class JudgeInput:
    """What a judge sees of one logged output."""

    output_id: str
    input: Any
    output: Any
    segment: Mapping[str, str] = field(default_factory=dict)
    signals: Mapping[str, float] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    """`model_version` and `config_version`, where the output has them."""


@dataclass(frozen=True)
class JudgeVerdict:
    verdict: Verdict
    rationale: str
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class JudgeError(MonitorError):
    """A judge could not give a verdict; what it cost and how long it took are still recorded."""

    def __init__(self, message: str, *, cost_usd: float = 0.0, latency_ms: float = 0.0) -> None:
        super().__init__(message)
        self.cost_usd = cost_usd
        self.latency_ms = latency_ms


class Judge(Protocol):
    """Anything that grades one output. Raises JudgeError when it cannot."""

    @property
    def name(self) -> str: ...

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        """What judging `item` will probably cost (0 for rule judges): the budget's guard."""
        ...

    def judge(self, item: JudgeInput) -> JudgeVerdict: ...


def as_text(value: Any) -> str:
    """An input or output as the text judges read: a string as is, JSON as its compact text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class Labeller(Protocol):
    """Anything that labels a cycle's sample as it is drawn: a judge, or the backtest's reviewers."""

    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]: ...
