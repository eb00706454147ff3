"""Judges: rule judges and an LLM judge that label each drawn output, and their agreement with humans.

`build_labellers(settings, engine, clock)` gives the cycle labellers that run the configured
judges (none when no feature has judges); `aiqm cycle`, the daemon's scheduler and the backtest
pass them to `CycleRunner`. Importing this package is cheap: the runner (and httpx) load only
when `build_labellers` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.decide.judge_agreement import JudgePairs, judge_pairs
from monitor.judges.base import Judge, JudgeError, JudgeInput, JudgeVerdict

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings
    from monitor.judges.base import Labeller

__all__ = [
    "Judge",
    "JudgeError",
    "JudgeInput",
    "JudgePairs",
    "JudgeVerdict",
    "build_labellers",
    "judge_pairs",
]


def build_labellers(
    settings: Settings, engine: Engine, clock: Callable[[], datetime], *, llm: bool = True
) -> list[Labeller]:
    """The labellers that run the configured judges: one `JudgeLabeller`, or none without judges.

    It opens its own HTTP client for each cycle that has an LLM judge (nothing to close).
    `llm=False` runs only the rule judges (the backtest replays history without spending).
    """
    blocks = [settings.defaults, *settings.features.values()]
    if not any(j.kind != "llm" or llm for block in blocks for j in block.judges):
        return []
    from monitor.judges.runner import JudgeLabeller

    return [JudgeLabeller(engine, settings, clock, llm=llm)]
