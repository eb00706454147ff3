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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LOW_CONFIDENCE_QUANTILE = 0.2
OTHER_STRATUM = "other"
PHASE_ONE_FACTOR = 20
PHASE_ONE_MIN = 1_000


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


def stratum_of(segment: Mapping[str, str], keys: Sequence[str]) -> str:
    return ",".join(f"{key}={segment.get(key, '')}" for key in keys) if keys else "all"


def allocate(
    sizes: Mapping[str, int], total: int, minimum: int, boost: Mapping[str, float] | None = None
) -> dict[str, int]:
    """Split `total` over strata in proportion to size (times an optional boost), at least
    `minimum` each (never more than a stratum has), by largest remainders."""
    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    weights = {name: size * (boost or {}).get(name, 1.0) for name, size in sizes.items()}
    allocation = {name: min(size, minimum) for name, size in sizes.items()}
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


def draw(candidates: Sequence[Drawable], plan: SamplingPlan, seed: int) -> list[Drawn]:
    """A stratified random sample of the candidates (outputs never reviewed before)."""
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


def phase_one_size(sample_size: int, population: int | None = None) -> int:
    """``m``: how many outputs phase one draws for a sample of `sample_size` (0: no draw at all).

    `population` is ``N`` when known: phase one never asks for more than there is."""
    if sample_size <= 0 or population == 0:
        return 0
    wanted = max(PHASE_ONE_FACTOR * sample_size, PHASE_ONE_MIN)
    return wanted if population is None else min(wanted, population)


def draw_from_phase_one(
    phase_one: Sequence[Drawable], population: int, plan: SamplingPlan, seed: int
) -> list[Drawn]:
    """Phase two: the stratified draw over phase one's simple random sample of ``m`` of the
    window's ``population`` (N) outputs, each inclusion probability times ``m / N``."""
    if not phase_one:
        return []
    factor = len(phase_one) / population
    return [
        Drawn(d.output_id, d.stratum, min(1.0, d.inclusion_prob * factor), d.low_confidence)
        for d in draw(phase_one, plan, seed)
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
    if share <= 0:
        return [False] * len(candidates)
    values = [c.confidence for c in candidates if c.confidence is not None]
    if not values:
        return [False] * len(candidates)
    cut = float(np.quantile(values, LOW_CONFIDENCE_QUANTILE))
    return [c.confidence is not None and c.confidence <= cut for c in candidates]
