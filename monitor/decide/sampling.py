"""Who gets reviewed: a stratified draw from a cycle's window, with its inclusion probabilities.

Strata are the combinations of the chosen segment tags (optionally split further into the
least confident outputs and the rest). Each stratum gets its proportional share of the
sample, but at least `min_per_stratum`, so that a small segment is still seen; the least
confident outputs can get a larger share. Every drawn output carries its inclusion
probability n_h / N_h, so the weighted (Horvitz-Thompson) estimate stays unbiased whatever
the allocation. The same seed gives the same draw.

A big window is drawn in two phases (double sampling for stratification): the store draws a
simple random sample of ``m`` of its ``N`` unreviewed outputs without reading the window
(`monitor.store.sample_queries.random_unreviewed`, ``m = phase_one_size(n)``), and
`draw_from_phase_one` runs the usual stratified draw over those ``m``. An output's inclusion
probability is then ``(m / N) * (n_h / m_h)``; the factor ``m / N`` is the same for every output
of a cycle, so weighted pass rates (ratios) do not depend on it, and weighting by the inverse
is the double expansion estimator, unbiased for the window's totals and means (``m_h`` is
random: this is the probability given phase one, which is what that estimator needs).

Active sampling (`ActiveDesign`: Zrnic & Candes, "Active statistical inference", 2024; stratified
PPI, Fisch et al. 2024). When judges gave verdicts on the window's outputs, each stratum's share is
split further into informativeness cells -- the judges' verdict (all pass, all fail, mixed or
unsure, none) times the confidence band (the window's least confident fifth, or the rest) -- and
allocated across them in proportion to ``N_c * sigma_c`` (Neyman), where ``sigma_c`` is the
spread of the judge's residual ``sqrt(E[(Y - f)^2])`` in that cell, learnt from past cycles' human
labels (`residual_spreads`, with a prior that makes every cell alike, so a new feature starts
uniform). A floor spreads `ACTIVE_FLOOR` of every stratum's share uniformly first, so each output
keeps at least that fraction of its stratum's uniform rate. Within a cell the draw is uniform, so
the inclusion probability ``n_c / N_c`` is exact and the weighted estimates stay unbiased.
Without a judge's verdict in the window the draw is exactly the one above.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

LOW_CONFIDENCE_QUANTILE = 0.2
OTHER_STRATUM = "other"
PHASE_ONE_FACTOR = 20
PHASE_ONE_MIN = 1_000
ACTIVE_FLOOR = 0.3
"""Share of each stratum's sample spread uniformly over it before the active allocation."""
ACTIVE_PRIOR_LABELS = 20.0
"""Pseudo-labels at `ACTIVE_PRIOR_SPREAD` in every cell: a new feature's draw starts uniform."""
ACTIVE_PRIOR_SPREAD = 0.25
"""The prior ``E[(Y - f)^2]``: a judge that knows nothing (f = 1/2 whatever Y is)."""
PAST_PAIRS_DAYS = 28.0
"""How far back the cells' spreads are learnt (the samples of the cycles of the last four weeks)."""
NO_VERDICT_SCORE = 0.5


class Drawable(Protocol):
    """What the draw reads of an output: a `Candidate`, or a row the store read."""

    @property
    def output_id(self) -> str: ...

    @property
    def segment(self) -> Mapping[str, str]: ...

    @property
    def confidence(self) -> float | None: ...


@dataclass(frozen=True)
class Candidate:
    output_id: str
    segment: Mapping[str, str]
    confidence: float | None = None


@dataclass(frozen=True)
class Drawn:
    output_id: str
    stratum: str
    inclusion_prob: float
    low_confidence: bool


@dataclass(frozen=True)
class SamplingPlan:
    size: int
    min_per_stratum: int = 3
    stratify_by: Sequence[str] | None = None
    max_strata: int = 50
    low_confidence_share: float = 0.0


class Reviewed(Protocol):
    """A past cycle's drawn output as the cells' spreads read it (a row the store read)."""

    @property
    def verdicts(self) -> Mapping[str, str]:
        """source -> verdict: `human:<name>` and `judge:<name>` labels."""
        ...

    @property
    def low_confidence(self) -> bool: ...


@dataclass(frozen=True)
class CellSpreads:
    """Per informativeness cell, ``sqrt(E[(Y - f)^2])``: how far the humans' verdict ``Y`` falls
    from the judges' ``f`` there (unseen cells: the prior's)."""

    by_cell: Mapping[str, float] = field(default_factory=dict)
    prior: float = math.sqrt(ACTIVE_PRIOR_SPREAD)

    def of(self, cell: str) -> float:
        return self.by_cell.get(cell, self.prior)


@dataclass(frozen=True)
class ActiveDesign:
    """What the active draw knows: the judges' verdicts on the window's outputs (output id ->
    one verdict per judge that gave one) and the cells' spreads learnt from past cycles."""

    verdicts: Mapping[str, Sequence[str]]
    spreads: CellSpreads = CellSpreads()
    floor: float = ACTIVE_FLOOR

    def covers(self, candidates: Sequence[Drawable]) -> bool:
        """Whether a judge gave a verdict on any of the candidates (else: the usual draw)."""
        return any(self.verdicts.get(c.output_id) for c in candidates)


def judge_cell(verdicts: Iterable[str]) -> str:
    """`pass` or `fail` when every judge said so, `mixed` when they differ or one is unsure,
    `none` without a verdict."""
    seen = set(verdicts)
    if not seen:
        return "none"
    if len(seen) == 1 and seen <= {"pass", "fail"}:
        return next(iter(seen))
    return "mixed"


def cell_of(verdicts: Iterable[str], low_confidence: bool) -> str:
    """The informativeness cell: the judges' verdict and the confidence band."""
    return f"judge:{judge_cell(verdicts)}|{'low' if low_confidence else 'rest'}"


def residual_spreads(reviewed: Iterable[Reviewed], prior_labels: float = ACTIVE_PRIOR_LABELS) -> CellSpreads:
    """Each cell's ``sqrt(E[(Y - f)^2])`` from past drawn outputs with a human verdict (``f``: 1
    when the judges said pass, 0 fail, 1/2 otherwise), shrunk towards the prior's 1/4 by
    `prior_labels` pseudo-labels. In a `pass` cell it is the root of how often humans said fail."""
    sums: dict[str, list[float]] = {}
    for item in reviewed:
        human = next(
            (v for s, v in sorted(item.verdicts.items()) if s.startswith("human:") and v in ("pass", "fail")),
            None,
        )
        if human is None:
            continue
        judges = [v for s, v in item.verdicts.items() if s.startswith("judge:")]
        cell = cell_of(judges, item.low_confidence)
        verdict = judge_cell(judges)
        score = 1.0 if verdict == "pass" else 0.0 if verdict == "fail" else NO_VERDICT_SCORE
        row = sums.setdefault(cell, [0.0, 0.0])
        row[0] += ((1.0 if human == "pass" else 0.0) - score) ** 2
        row[1] += 1
    return CellSpreads(
        {
            cell: math.sqrt((total + prior_labels * ACTIVE_PRIOR_SPREAD) / (n + prior_labels))
            for cell, (total, n) in sums.items()
        }
    )


def stratum_of(segment: Mapping[str, str], keys: Sequence[str]) -> str:
    return ",".join(f"{key}={segment.get(key, '')}" for key in keys) if keys else "all"


def allocate(
    sizes: Mapping[str, int],
    total: int,
    minimum: int | Mapping[str, int],
    boost: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Split `total` over strata in proportion to size (times an optional boost), at least
    `minimum` each (one for all, or per stratum; never more than a stratum has), by largest
    remainders."""
    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    weights = {name: size * (boost or {}).get(name, 1.0) for name, size in sizes.items()}
    floor = minimum if isinstance(minimum, Mapping) else dict.fromkeys(sizes, minimum)
    allocation = {name: min(size, floor.get(name, 0)) for name, size in sizes.items()}
    remaining = total - sum(allocation.values())
    while remaining > 0:
        open_strata = {n: w for n, w in weights.items() if allocation[n] < sizes[n]}
        if not open_strata:
            break
        weight_sum = sum(open_strata.values())
        ideal = {n: remaining * w / weight_sum for n, w in open_strata.items()}
        granted = 0
        for name, share in ideal.items():
            extra = min(sizes[name] - allocation[name], math.floor(share))
            allocation[name] += extra
            granted += extra
        if granted == 0:  # hand out the rest one by one, largest remainder first
            order = sorted(ideal, key=lambda n: (ideal[n] - math.floor(ideal[n]), weights[n]), reverse=True)
            for name in order[:remaining]:
                allocation[name] += 1
                granted += 1
        remaining -= granted
    return allocation


def draw(
    candidates: Sequence[Drawable], plan: SamplingPlan, seed: int, active: ActiveDesign | None = None
) -> list[Drawn]:
    """A stratified random sample of the candidates (outputs never reviewed before); with an
    `active` design whose judges labelled some of them, each stratum's share is spread over its
    informativeness cells (see the module's note)."""
    if not candidates or plan.size <= 0:
        return []
    keys = (
        list(plan.stratify_by)
        if plan.stratify_by is not None
        else sorted({key for c in candidates for key in c.segment})
    )
    names = [stratum_of(c.segment, keys) for c in candidates]
    names = _cap_strata(names, plan.max_strata)
    low = _low_confidence_flags(candidates, plan.low_confidence_share)
    if plan.low_confidence_share > 0:
        names = [f"{name}|{'low' if flag else 'rest'}" for name, flag in zip(names, low, strict=True)]
    members: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        members.setdefault(name, []).append(index)
    sizes = {name: len(idx) for name, idx in members.items()}
    boost = None
    if plan.low_confidence_share > 0:
        low_total = sum(s for n, s in sizes.items() if n.endswith("|low")) or 1
        rest_total = sum(s for n, s in sizes.items() if n.endswith("|rest")) or 1
        share = plan.low_confidence_share
        boost = {
            n: (share / low_total if n.endswith("|low") else (1 - share) / rest_total) * sum(sizes.values())
            for n in sizes
        }
    allocation = allocate(sizes, plan.size, plan.min_per_stratum, boost)
    rng = np.random.default_rng(seed)
    if active is not None and active.covers(candidates):
        return _draw_cells(candidates, members, allocation, active, rng)
    chosen: list[Drawn] = []
    for name in sorted(members):
        take = allocation.get(name, 0)
        if take <= 0:
            continue
        pool = members[name]
        picks = rng.choice(len(pool), size=take, replace=False)
        probability = take / len(pool)
        for pick in sorted(int(p) for p in picks):
            index = pool[pick]
            chosen.append(Drawn(candidates[index].output_id, name, probability, low[index]))
    return chosen


def cell_allocation(
    sizes: Mapping[str, int], total: int, spreads: Mapping[str, float], floor: float = ACTIVE_FLOOR
) -> dict[str, int] | None:
    """One stratum's `total` over its cells: first ``ceil(floor * total * N_c / N)`` each (the
    uniform floor), the rest in proportion to ``N_c * sigma_c`` (Neyman). None when the floor
    alone needs more than `total` (the stratum is then drawn uniformly)."""
    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    minimum = {c: min(n, math.ceil(floor * total * n / available - 1e-9)) for c, n in sizes.items()}
    if sum(minimum.values()) > total:
        return None
    return allocate(sizes, total, minimum, {c: max(spreads[c], 1e-6) for c in sizes})


def _draw_cells(
    candidates: Sequence[Drawable],
    members: Mapping[str, list[int]],
    allocation: Mapping[str, int],
    active: ActiveDesign,
    rng: np.random.Generator,
) -> list[Drawn]:
    """Each stratum's share over its informativeness cells, uniform within a cell."""
    band = _low_confidence_flags(candidates, 1.0)
    chosen: list[Drawn] = []
    for name in sorted(members):
        take = allocation.get(name, 0)
        if take <= 0:
            continue
        cells: dict[str, list[int]] = {}
        for index in members[name]:
            verdicts = active.verdicts.get(candidates[index].output_id, ())
            cells.setdefault(cell_of(verdicts, band[index]), []).append(index)
        sizes = {cell: len(pool) for cell, pool in cells.items()}
        spreads = {cell: active.spreads.of(cell) for cell in cells}
        split = cell_allocation(sizes, take, spreads, active.floor)
        if split is None:  # too small a share to give every cell its floor: uniform over the stratum
            cells, split = {"": members[name]}, {"": take}
        for cell in sorted(cells):
            pool = cells[cell]
            picks = rng.choice(len(pool), size=split[cell], replace=False)
            stratum = f"{name}|{cell}" if cell else name
            for pick in sorted(int(p) for p in picks):
                index = pool[pick]
                chosen.append(
                    Drawn(candidates[index].output_id, stratum, split[cell] / len(pool), band[index])
                )
    return chosen


def phase_one_size(sample_size: int, population: int | None = None) -> int:
    """``m``: how many outputs phase one draws for a sample of `sample_size` (0: no draw at all).

    `population` is ``N`` when known: phase one never asks for more than there is."""
    if sample_size <= 0 or population == 0:
        return 0
    wanted = max(PHASE_ONE_FACTOR * sample_size, PHASE_ONE_MIN)
    return wanted if population is None else min(wanted, population)


def draw_from_phase_one(
    phase_one: Sequence[Drawable],
    population: int,
    plan: SamplingPlan,
    seed: int,
    active: ActiveDesign | None = None,
) -> list[Drawn]:
    """Phase two: the stratified (or active) draw over phase one's simple random sample of ``m``
    of the window's ``population`` (N) outputs, each inclusion probability times ``m / N``."""
    if not phase_one:
        return []
    factor = len(phase_one) / population
    return [
        Drawn(d.output_id, d.stratum, min(1.0, d.inclusion_prob * factor), d.low_confidence)
        for d in draw(phase_one, plan, seed, active)
    ]


def _cap_strata(names: list[str], max_strata: int) -> list[str]:
    """Keep the largest strata; fold the rest into one, so that a high-cardinality tag cannot explode."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    if len(counts) <= max_strata:
        return names
    kept = set(sorted(counts, key=lambda n: (-counts[n], n))[: max_strata - 1])
    return [name if name in kept else OTHER_STRATUM for name in names]


def _low_confidence_flags(candidates: Sequence[Drawable], share: float) -> list[bool]:
    """The window's least confident fifth (none flagged when `share` is 0)."""
    if share <= 0:
        return [False] * len(candidates)
    values = [c.confidence for c in candidates if c.confidence is not None]
    if not values:
        return [False] * len(candidates)
    cut = float(np.quantile(values, LOW_CONFIDENCE_QUANTILE))
    return [c.confidence is not None and c.confidence <= cut for c in candidates]
