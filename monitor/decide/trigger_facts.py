"""What the trigger rules read and write: the baseline, one cycle's facts, trigger states and the
decision (monitor.decide.triggers has the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor.decide.judge_agreement import JudgePairs
from monitor.decide.quality import ScopeQuality

__all__ = [
    "Baseline",
    "Condition",
    "CycleFacts",
    "Decision",
    "Level",
    "State",
    "Transition",
    "TriggerState",
    "rate",
    "run_length",
]

State = Literal["ok", "pending", "firing", "resolved"]
Level = Literal["ok", "pending", "firing"]


@dataclass(frozen=True)
class Baseline:
    version: int
    pass_rate: float
    n_eff: float
    segments: Mapping[str, tuple[float, float]]
    """scope -> (pass rate, effective n) for segments seen in the baseline window."""


@dataclass(frozen=True)
class CycleFacts:
    """What the rules need to know of one cycle."""

    at: datetime
    outputs: int
    human_labels_received: int
    labels_received: int
    quality: Mapping[str, ScopeQuality]
    drifted: Sequence[str] = ()
    drift_checked: bool = False
    judges: Mapping[str, JudgePairs] = field(default_factory=dict)
    """Per judge name, its verdicts paired with the humans' on the cycle's sample."""


@dataclass(frozen=True)
class TriggerState:
    trigger: str
    scope: str
    state: State
    since: datetime
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    cooldown_left: int = 0
    """Cycles during which it may not fire again, after it was resolved."""


@dataclass(frozen=True)
class Condition:
    level: Level
    exit_ok: bool
    reason: str
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class Transition:
    trigger: str
    scope: str
    from_state: State
    to_state: State
    reason: str
    evidence: Mapping[str, Any]
    owner: str


@dataclass(frozen=True)
class Decision:
    states: dict[tuple[str, str], TriggerState]
    transitions: list[Transition]
    mode: str
    mode_reason: str
    mode_by_override: bool
    """An override in force set the mode (it holds only while that override lasts)."""
    next_sample_size: int


def rate(x: float) -> str:
    return f"{100 * x:.1f}%"


def run_length(history: Sequence[CycleFacts], bad: Any) -> int:
    """How many of the latest cycles in a row satisfy `bad`."""
    count = 0
    for cycle in reversed(history):
        if not bad(cycle):
            break
        count += 1
    return count
