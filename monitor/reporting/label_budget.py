"""What a feature's last answer cost in human labels, as `aiqm status` and the review page say it.

The budget is read from the last finished cycle's stored result (its `all` scope); nothing is
recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.store import feature_queries as fq

__all__ = ["LabelBudget", "LastAnswer", "label_budget", "last_answer"]


@dataclass(frozen=True)
class LabelBudget:
    """The human labels an answer needed, and what they were worth with the judges' verdicts."""

    human: int
    worth: float
    """The effective labels as the detectors take them (`ScopeQuality.n_eff`): the human labels
    stretched by the judges. One week's interval, which must hold alone, may take fewer."""
    judges_saved: Mapping[str, float] = field(default_factory=dict)
    """Per judge, the labels its verdicts were worth (worth with it, minus without); empty when
    no judge's verdicts were used."""

    def to_json(self) -> dict[str, Any]:
        return {"human": self.human, "worth": self.worth, "judges_saved": dict(self.judges_saved)}


@dataclass(frozen=True)
class LastAnswer:
    """A feature's last finished cycle and its label budget (None: it had no labels to answer)."""

    cycle_at: datetime
    budget: LabelBudget | None


def label_budget(result: Mapping[str, Any] | None) -> LabelBudget | None:
    """How many human labels the cycle's overall answer needed, what they were worth with the
    judges' verdicts on the window, and what each judge saved; None without an overall answer."""
    overall = ((result or {}).get("quality") or {}).get("all")
    if not overall:
        return None
    saved = overall.get("judges_saved") or {}
    return LabelBudget(
        human=int(overall["labelled"]),
        worth=float(overall["n_eff"]),
        judges_saved={str(name): float(value) for name, value in saved.items()},
    )


def last_answer(conn: Connection, feature: str) -> LastAnswer | None:
    """The feature's last finished cycle with its label budget; None before its first cycle."""
    row = fq.last_cycle(conn, feature)
    if row is None:
        return None
    return LastAnswer(cycle_at=row["at"], budget=label_budget(row.get("result")))
