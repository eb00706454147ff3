"""Judge-human agreement on a cycle's sample: the paired verdicts, and Cohen's kappa from them.

An item counts when a human and the judge both said `pass` or `fail` (an `unsure` from either
side is no verdict). Where several humans labelled an item, the first source by name is used,
as for the pass rate. The counts are stored with the cycle, so the `judge` trigger can pool
the pairs of several cycles (monitor.decide.triggers.judge_conditions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.stats.agreement import cohens_kappa

__all__ = ["JudgePairs", "judge_pairs"]


@dataclass(frozen=True)
class JudgePairs:
    """A 2×2 table of (human, judge) verdicts, plus how many items the judge gave a verdict."""

    pass_pass: int = 0
    pass_fail: int = 0
    """human pass, judge fail"""
    fail_pass: int = 0
    """human fail, judge pass"""
    fail_fail: int = 0
    judged: int = 0

    @property
    def n(self) -> int:
        return self.pass_pass + self.pass_fail + self.fail_pass + self.fail_fail

    def __add__(self, other: JudgePairs) -> JudgePairs:
        return JudgePairs(
            self.pass_pass + other.pass_pass,
            self.pass_fail + other.pass_fail,
            self.fail_pass + other.fail_pass,
            self.fail_fail + other.fail_fail,
            self.judged + other.judged,
        )

    def summary(self, confidence: float) -> dict[str, Any]:
        """kappa with its interval, raw agreement and n (None where undefined: JSON has no NaN)."""
        out: dict[str, Any] = {"kappa": None, "low": None, "high": None, "agreement": None, "n": self.n}
        if self.n:
            humans = ["pass"] * (self.pass_pass + self.pass_fail) + ["fail"] * (
                self.fail_pass + self.fail_fail
            )
            judge = (
                ["pass"] * self.pass_pass
                + ["fail"] * self.pass_fail
                + ["pass"] * self.fail_pass
                + ["fail"] * self.fail_fail
            )
            result = cohens_kappa(humans, judge, confidence)
            out["agreement"] = result.raw_agreement
            for key, value in (("kappa", result.kappa), ("low", result.low), ("high", result.high)):
                out[key] = None if math.isnan(value) else value
        return out

    def to_json(self, confidence: float) -> dict[str, Any]:
        return {
            **self.summary(confidence),
            "judged": self.judged,
            "pairs": [[self.pass_pass, self.pass_fail], [self.fail_pass, self.fail_fail]],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JudgePairs:
        (pp, pf), (fp, ff) = data.get("pairs") or ((0, 0), (0, 0))
        return cls(int(pp), int(pf), int(fp), int(ff), int(data.get("judged", 0)))


def judge_pairs(verdicts: Iterable[Mapping[str, str]]) -> dict[str, JudgePairs]:
    """Per judge name (`judge:<name>` sources), the paired verdicts over these items' labels."""
    counts: dict[str, list[int]] = {}
    for item in verdicts:
        human = next(
            (v for s, v in sorted(item.items()) if s.startswith("human:") and v in ("pass", "fail")), None
        )
        for source, verdict in item.items():
            if not source.startswith("judge:"):
                continue
            row = counts.setdefault(source.removeprefix("judge:"), [0, 0, 0, 0, 0])
            row[4] += 1
            if human is None or verdict not in ("pass", "fail"):
                continue
            row[(0 if human == "pass" else 2) + (0 if verdict == "pass" else 1)] += 1
    return {name: JudgePairs(*row) for name, row in sorted(counts.items())}
