"""Sequential detection of a drop in a pass rate, accumulating evidence across cycles.

Why a Bernoulli CUSUM: one week's 50 labels give a pass rate of +-7 points, so no single
week can show a 5-point drop; the CUSUM adds each cycle's log-likelihood ratio of "dropped
by delta" against "as in the baseline" and forgets only evidence that points the other
way, which is the optimal way to catch a persistent shift of a given size (Moustakides
1986) and a standard one for proportions (Reynolds & Stoumbos 1999, "A CUSUM chart for
monitoring a proportion when inspecting continuously", J. Quality Technology 31(1)).

For each cycle t with x_t passes out of n_t labels (effective counts are fine: the ratio is
linear in them),

    S_t = max(0, S_{t-1} + x_t log(p1/p0) + (n_t - x_t) log((1-p1)/(1-p0))),  p1 = p0 - delta,

and the detector signals once S_t >= h. h is in nats: e^h is roughly the likelihood ratio
the evidence must reach. The last cycle at which S was 0 estimates where the change began
(Page 1954; Hinkley 1971), which the fallback rule uses to pool the cycles since then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BernoulliCusum", "CusumPath"]


@dataclass(frozen=True)
class CusumPath:
    """The statistic after each cycle, and where the current run of evidence began."""

    values: tuple[float, ...]
    run_start: tuple[int, ...]
    """For each cycle, the index of the first cycle that contributes to its statistic."""

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0.0


@dataclass(frozen=True)
class BernoulliCusum:
    """A one-sided CUSUM for a drop of `delta` below `p0` in a pass rate."""

    p0: float
    delta: float
    threshold: float
    cap: float | None = None
    """Evidence is capped here, so that a recovery is seen within a few cycles."""

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < 1.0:
            raise ValueError(f"p0 must be in (0, 1), got {self.p0}")
        if not 0.0 < self.delta < self.p0:
            raise ValueError(f"delta must be in (0, p0), got {self.delta}")
        if self.threshold <= 0:
            raise ValueError("threshold must be positive")

    @property
    def p1(self) -> float:
        return self.p0 - self.delta

    def increment(self, passes: float, n: float) -> float:
        """Log-likelihood ratio of one cycle's labels: positive when they look like p1."""
        return passes * math.log(self.p1 / self.p0) + (n - passes) * math.log((1 - self.p1) / (1 - self.p0))

    def run(self, counts: Sequence[tuple[float, float]], start: float = 0.0) -> CusumPath:
        """The path over cycles given as (passes, n); a cycle with n == 0 leaves S unchanged."""
        values: list[float] = []
        starts: list[int] = []
        statistic = start
        run_start = 0
        for index, (passes, n) in enumerate(counts):
            if n > 0:
                if statistic <= 0.0:
                    run_start = index
                statistic = max(0.0, statistic + self.increment(passes, n))
                if self.cap is not None:
                    statistic = min(statistic, self.cap)
            values.append(statistic)
            starts.append(run_start if statistic > 0 else index + 1)
        return CusumPath(tuple(values), tuple(starts))
