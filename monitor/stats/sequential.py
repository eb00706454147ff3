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

Why a family of them: one CUSUM is tuned to one drop size. Tuned to a small drop it gathers
little evidence per label from a collapse (each label is worth the log ratio of the two small
hypotheses), so a 35-point collapse seen through 20 labels a week takes four weeks to page
anyone; tuned to a collapse, it never sees a slow slide. `CusumFamily` runs CUSUMs for a grid
of drop sizes delta_1 < delta_2 < ... < delta_K in parallel (the "multichart CUSUM") and
signals when any member crosses its threshold h_k. Taking the maximum of the members'
statistics is the generalized likelihood ratio over the grid: the member in the lead names
the most likely drop size, and its last zero the most likely change point (Lorden 1971,
"Procedures for reacting to a change in distribution", Ann. Math. Statist. 42(6); Tartakovsky,
Nikiforov & Basseville 2014, "Sequential Analysis", CRC, on multichart CUSUMs being nearly
optimal for every size on the grid at once). The family raises a false alarm when any member
does, so its false-alarm probability is at most the sum of the members' (Bonferroni): with
h_k = h + log K each member's false alarms are at most about e^{-h}/K as often as a single
CUSUM at h (Wald's bound P(S ever reaches h) <= e^{-h} per run of evidence), and the family's
at most about e^{-h}. Members for large drops have a steep negative drift when nothing
changed, so their false alarms come only from a few very bad cycles; the caller may give
them a lower threshold and check the family's false-alarm rate by simulation. Such a member
may also be window-limited (`window`): it weighs only its last few cycles, so that it cannot
gather a slide's evidence over many weeks at its lower threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BernoulliCusum", "CusumFamily", "CusumPath", "FamilyPath"]


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
    window: int | None = None
    """Window-limited: only the last `window` cycles with labels may contribute (`_run_window`);
    `run`'s `start` does not apply then."""

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < 1.0:
            raise ValueError(f"p0 must be in (0, 1), got {self.p0}")
        if not 0.0 < self.delta < self.p0:
            raise ValueError(f"delta must be in (0, p0), got {self.delta}")
        if self.threshold <= 0:
            raise ValueError("threshold must be positive")
        if self.window is not None and self.window < 1:
            raise ValueError("window must be at least one cycle")

    @property
    def p1(self) -> float:
        return self.p0 - self.delta

    def increment(self, passes: float, n: float) -> float:
        """Log-likelihood ratio of one cycle's labels: positive when they look like p1."""
        return passes * math.log(self.p1 / self.p0) + (n - passes) * math.log((1 - self.p1) / (1 - self.p0))

    def run(self, counts: Sequence[tuple[float, float]], start: float = 0.0) -> CusumPath:
        """The path over cycles given as (passes, n); a cycle with n == 0 leaves S unchanged."""
        if self.window is not None:
            return self._run_window(counts, self.window)
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

    def _run_window(self, counts: Sequence[tuple[float, float]], window: int) -> CusumPath:
        """The window-limited CUSUM: S_t = max(0, max over the last `window` labelled cycles k of
        the increments summed from k to t) (Lai 1995, "Sequential changepoint detection in quality
        control and dynamical systems", JRSS B 57(4)). A detector tuned to a collapse must see it
        within a few cycles; evidence it would gather over many is a slow slide's, for the
        detector tuned to that."""
        values: list[float] = []
        starts: list[int] = []
        recent: list[tuple[int, float]] = []
        statistic, run_start = 0.0, 0
        for index, (passes, n) in enumerate(counts):
            if n > 0:
                recent = [*recent, (index, self.increment(passes, n))][-window:]
                statistic, run_start = 0.0, index + 1
                total = 0.0
                for at, increment in reversed(recent):
                    total += increment
                    if total >= statistic and total > 0.0:
                        statistic, run_start = total, at
                if self.cap is not None:
                    statistic = min(statistic, self.cap)
            values.append(statistic)
            starts.append(run_start if statistic > 0 else index + 1)
        return CusumPath(tuple(values), tuple(starts))


@dataclass(frozen=True)
class FamilyPath:
    """The members' paths over the same cycles, and which member leads at the end."""

    paths: tuple[CusumPath, ...]
    thresholds: tuple[float, ...]

    @property
    def shares(self) -> tuple[float, ...]:
        """Each member's last statistic as a share of its threshold."""
        return tuple(p.last / h for p, h in zip(self.paths, self.thresholds, strict=True))

    @property
    def leader(self) -> int:
        """The member nearest its threshold (the first on ties): the most likely drop size."""
        shares = self.shares
        return max(range(len(shares)), key=lambda k: (shares[k], -k))

    @property
    def share(self) -> float:
        return self.shares[self.leader]

    @property
    def signalled(self) -> bool:
        return any(p.last >= h for p, h in zip(self.paths, self.thresholds, strict=True))

    @property
    def run_start(self) -> int:
        """The leader's estimate of where the change began (the cycle after the last if none)."""
        return self.paths[self.leader].run_start[-1]


@dataclass(frozen=True)
class CusumFamily:
    """CUSUMs for several drop sizes, run in parallel (see the module docstring).

    Members may test against slightly different p0 (a caller may allow more for the baseline's
    own error in some of them); their alternatives p1 must decrease with the drop size.
    """

    members: tuple[BernoulliCusum, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a CUSUM family needs at least one member")
        alternatives = [m.p1 for m in self.members]
        if alternatives != sorted(set(alternatives), reverse=True):
            raise ValueError(f"the members' alternatives must be distinct and decreasing, got {alternatives}")

    def run(self, counts: Sequence[tuple[float, float]]) -> FamilyPath:
        return FamilyPath(
            tuple(m.run(counts) for m in self.members), tuple(m.threshold for m in self.members)
        )
