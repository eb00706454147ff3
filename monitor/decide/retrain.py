"""`retrain` and `fallback`: is quality shown to have dropped below the baseline, or below its floor?
(The rules and their tuning are described in monitor.decide.triggers.)"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from monitor.config import FeatureSettings
from monitor.decide.quality import ScopeQuality
from monitor.decide.trigger_facts import Baseline, Condition, CycleFacts, Level, rate
from monitor.stats.sequential import BernoulliCusum, CusumFamily

__all__ = [
    "ALLOWANCE",
    "BASELINE_SHRINK",
    "CUSUM_THRESHOLD",
    "DROP_GRID_FACTOR",
    "ESCALATE_AT",
    "EXIT_AT",
    "FALLBACK_ALPHA",
    "FALLBACK_EXIT_Z",
    "FALLBACK_PENDING_Z",
    "FALLBACK_WINDOWS",
    "FAST_SHRINK",
    "FAST_THRESHOLD",
    "FAST_WINDOW",
    "FLOOR_CLAMP",
    "LARGEST_DROP",
    "MIN_ALTERNATIVE",
    "PENDING_AT",
    "SEGMENT_ESCALATE_AT",
    "SEGMENT_PRIOR_LABELS",
    "SEGMENT_SHRINK",
    "RetrainCheck",
    "fallback_condition",
    "retrain_conditions",
]

CUSUM_THRESHOLD = 6.0
"""Nats of evidence for `retrain` at scope all. By simulation (tests/test_detection_simulation.py):
a stable feature with a 4-cycle baseline fires less than once in ten years of weekly cycles,
and a one-point-a-week slide is caught within three to eight weeks of its start."""
ALLOWANCE = 0.2
"""The detector weighs "dropped by the full `retrain_drop`" against "dropped by a fifth of it", so
a drop of less than about 60% of `retrain_drop` accumulates no evidence: a slide must really be
heading for the full drop before anyone is paged. Tuned by backtests of slides and steps with
several sampler seeds: larger allowances miss a one-point-a-week slide for weeks longer."""
FAST_THRESHOLD = 3.0
"""Nats of evidence for the members tuned to collapses (`retrain_drop` doubled past `fallback_drop`),
plus the log of their number. Their null drift is steep, so their false alarms come from a few very
bad cycles; the family's false-alarm rate is checked by simulation (tests/test_detection_simulation.py)."""
FAST_WINDOW = 4
"""The fast members weigh only the last this many cycles with labels (window-limited CUSUM): a
collapse shows within a few; evidence gathered over many weeks is a slide's, for the slow member
and its higher threshold (a small segment with a lucky baseline must not page anyone through a
fast member's low threshold)."""
DROP_GRID_FACTOR = 2.0
LARGEST_DROP = 0.4
"""The fast members' drops: `retrain_drop` doubled until past `fallback_drop`, then doubled up to this."""
FAST_SHRINK = 1.0
"""The fast members lower the baseline by this many of its standard errors (at least as much as the
slow one): a baseline that came out high by chance looks like a drop of a few points, which only the
members for larger drops would take seriously; it costs them little power against a large drop."""
MIN_ALTERNATIVE = 0.01
ESCALATE_AT = 0.05
"""Share of the threshold at which the next cycle draws the larger sample."""
SEGMENT_ESCALATE_AT = 0.3
"""Segments see few labels each, so their watchers wander more: they ask for more labels later."""
PENDING_AT = 0.5
EXIT_AT = 0.25
BASELINE_SHRINK = 0.5
FALLBACK_ALPHA = 0.05
"""One-sided error of `fallback`, split over the windows tested (Bonferroni)."""
FALLBACK_WINDOWS = 8
FALLBACK_EXIT_Z = 2.326  # leave fallback once the last two cycles are above the floor at 99%
FALLBACK_PENDING_Z = 1.0
FLOOR_CLAMP = 0.01
"""The score test takes the variance at the floor, kept this far inside (0, 1)."""
SEGMENT_PRIOR_LABELS = 100
"""A segment's own baseline is pulled towards the feature's by this many pseudo-labels."""
SEGMENT_SHRINK = 1.0
"""...and lowered by this many standard errors of its own labels."""


def _family_for(
    p0: float, se: float, shrink: float, drops: tuple[float, float], thresholds: tuple[float, float]
) -> tuple[CusumFamily, tuple[float, ...]] | None:
    """The detectors for a baseline `p0`, lowered by `shrink` for the baseline's own error.

    `drops` is (retrain_drop, the collapse size). The first member is the slow-slide detector:
    the full drop against the allowance, at `threshold`. The others are tuned to the drop doubled
    (DROP_GRID_FACTOR) until past the collapse size, against a baseline lowered by FAST_SHRINK of
    its standard error `se`, and share `fast_threshold` plus the log of their number (Bonferroni).
    Members whose alternative would be a pass rate near 0 are left out. Returns the family and the
    drop each member is tuned to.
    """
    drop, collapse = drops
    threshold, fast_threshold = thresholds
    slow = min(p0 - shrink, 0.999) - ALLOWANCE * drop
    if slow - (1 - ALLOWANCE) * drop <= MIN_ALTERNATIVE:
        return None
    members = [BernoulliCusum(p0=slow, delta=(1 - ALLOWANCE) * drop, threshold=threshold, cap=2 * threshold)]
    fast = min(p0 - max(shrink, FAST_SHRINK * se), 0.999) - ALLOWANCE * drop
    size = drop
    while size < collapse:
        size *= DROP_GRID_FACTOR
    grid: list[float] = []
    while size <= LARGEST_DROP + 1e-9 and fast - (size - ALLOWANCE * drop) > MIN_ALTERNATIVE:
        grid.append(size)
        size *= DROP_GRID_FACTOR
    h = fast_threshold + math.log(max(1, len(grid)))
    members += [
        BernoulliCusum(p0=fast, delta=d - ALLOWANCE * drop, threshold=h, cap=2 * h, window=FAST_WINDOW)
        for d in grid
    ]
    return CusumFamily(tuple(members)), (drop, *grid)


def _watcher_for(p0: float, shrink: float, drop: float, threshold: float) -> BernoulliCusum | None:
    """The slow-slide detector without the allowance: it sees a drop building sooner."""
    p0c = min(p0 - shrink, 0.999)
    if p0c - drop <= MIN_ALTERNATIVE:
        return None
    return BernoulliCusum(p0=p0c, delta=drop, threshold=threshold, cap=2 * threshold)


def _scope_baseline(
    settings: FeatureSettings, baseline: Baseline, scope: str
) -> tuple[float, float, float, float]:
    """(p0, its effective n, its standard error, the shrink for its own error) for a scope."""
    own = baseline.segments.get(scope)
    if scope != "all" and own is not None and own[1] >= settings.segment_min_labels:
        # Partial pooling: a segment's baseline from few labels is noisy, and a high one by
        # chance would page someone; pull it towards the feature's baseline, and lower it by
        # a whole standard error of its own labels.
        n0 = own[1] + SEGMENT_PRIOR_LABELS
        p0 = (own[0] * own[1] + baseline.pass_rate * SEGMENT_PRIOR_LABELS) / n0
        # Its own labels' standard error, at the pooled rate: a segment whose few baseline
        # labels all passed is not known to pass always.
        se = math.sqrt(p0 * (1 - p0) / own[1]) if own[1] else 0.0
        return p0, n0, se, SEGMENT_SHRINK * se
    p0, n0 = baseline.pass_rate, baseline.n_eff
    se = math.sqrt(p0 * (1 - p0) / n0) if n0 > 0 else 0.0
    return p0, n0, se, BASELINE_SHRINK * se


@dataclass(frozen=True)
class RetrainCheck:
    """One scope's `retrain` condition, and what the sample size and `fallback` need of it."""

    condition: Condition
    share: float
    """How near the detectors are to firing: the slow-slide member's or the watcher's share of
    the threshold, or a fast member's once it is pending."""
    run_start: int
    """The leading detector's estimate of where the change began (len(history) if none)."""


def retrain_conditions(
    settings: FeatureSettings, baseline: Baseline, history: Sequence[CycleFacts]
) -> dict[str, RetrainCheck]:
    """Per scope: the condition, how near it is to firing, and the estimated change point."""
    scopes = sorted({scope for cycle in history for scope in cycle.quality if scope != "all"})
    out: dict[str, RetrainCheck] = {}
    for scope in ["all", *scopes]:
        toll = 0.0 if scope == "all" else math.log(max(1, len(scopes)))
        threshold = CUSUM_THRESHOLD + toll
        p0, n0, se, shrink = _scope_baseline(settings, baseline, scope)
        drops = (settings.retrain_drop, settings.fallback_drop)
        detectors = _family_for(p0, se, shrink, drops, (threshold, FAST_THRESHOLD + toll))
        if detectors is None:
            continue
        counts = [
            (c.quality[scope].passes_eff, c.quality[scope].n_eff) if scope in c.quality else (0.0, 0.0)
            for c in history
        ]
        if not any(n for _, n in counts):
            continue
        out[scope] = _retrain_check(settings, detectors, counts, history, scope, (p0, n0, shrink))
    return out


def _retrain_check(
    settings: FeatureSettings,
    detectors: tuple[CusumFamily, tuple[float, ...]],
    counts: Sequence[tuple[float, float]],
    history: Sequence[CycleFacts],
    scope: str,
    base: tuple[float, float, float],
) -> RetrainCheck:
    p0, n0, shrink = base
    family, drops = detectors
    path = family.run(counts)
    lead = path.leader
    statistic, threshold = path.paths[lead].last, path.thresholds[lead]
    share = path.share
    watcher = _watcher_for(p0, shrink, settings.retrain_drop, path.thresholds[0])
    watch = watcher.run(counts).last if watcher else 0.0
    start = path.run_start
    recent = [c.quality[scope] for c in history[start:] if scope in c.quality]
    x = sum(q.passes_eff for q in recent)
    n = sum(q.n_eff for q in recent)
    level: Level = "firing" if path.signalled else "pending" if share >= PENDING_AT else "ok"
    drop = drops[lead]
    since_text = f" over the last {len(history) - start} cycles" if recent else ""
    reason = (
        f"pass rate {rate(x / n) if n else 'n/a'}{since_text} against baseline {rate(p0)}; "
        f"evidence of a {100 * drop:.0f}-point drop {statistic:.1f} of {threshold:.1f}"
    )
    evidence = {
        "statistic": round(statistic, 4),
        "threshold": round(threshold, 4),
        "drop": round(drop, 4),
        "detectors": {
            f"{100 * d:.0f}": [round(p.last, 4), round(h, 4)]
            for d, p, h in zip(drops, path.paths, path.thresholds, strict=True)
        },
        "baseline": p0,
        "baseline_n": n0,
        "recent_pass_rate": (x / n) if n else None,
        "recent_n": round(n, 2),
        "cycles": len(history) - start,
        "watch": round(watch, 4),
    }
    exit_ok = all(s <= EXIT_AT for s in path.shares)
    slow = max(path.shares[0], watch / path.thresholds[0])
    near = max(slow, share if level != "ok" else 0.0)
    return RetrainCheck(Condition(level, exit_ok, reason, evidence), near, start)


def fallback_condition(
    settings: FeatureSettings, baseline: Baseline, history: Sequence[CycleFacts], run_start: int | None
) -> Condition:
    """Is the pass rate since the drop began shown to be below the floor?

    The drop's start is not known exactly, so each window from the CUSUM's change point (at
    most FALLBACK_WINDOWS cycles back) to now is tested, with a Bonferroni bound over them.
    """
    floor = baseline.pass_rate - settings.fallback_drop
    se_base = (
        math.sqrt(baseline.pass_rate * (1 - baseline.pass_rate) / baseline.n_eff) if baseline.n_eff else 0
    )
    evidence: dict[str, Any] = {"floor": round(floor, 4), "baseline": baseline.pass_rate}
    recent_two = [c.quality["all"] for c in history[-2:] if "all" in c.quality]
    exit_z = _z_above(recent_two, floor, se_base)
    exit_ok = exit_z is not None and exit_z >= FALLBACK_EXIT_Z
    if run_start is None or run_start >= len(history):
        return Condition("ok", exit_ok, f"no evidence of a drop below the floor {rate(floor)}", evidence)
    first = max(run_start, len(history) - FALLBACK_WINDOWS)
    best: tuple[float, int, float, float] | None = None
    windows = 0
    for start in range(first, len(history)):
        pooled = [c.quality["all"] for c in history[start:] if "all" in c.quality]
        z_above = _z_above(pooled, floor, se_base)
        if z_above is None:
            continue
        windows += 1
        x = sum(q.passes_eff for q in pooled)
        n = sum(q.n_eff for q in pooled)
        if best is None or -z_above > best[0]:
            best = (-z_above, len(history) - start, x, n)
    if best is None:
        return Condition("ok", exit_ok, "no labels since the change began", evidence)
    z, cycles, x, n = best
    needed = float(NormalDist().inv_cdf(1 - FALLBACK_ALPHA / windows))
    evidence.update(
        {
            "pass_rate": round(x / n, 4),
            "n": round(n, 2),
            "z": round(z, 3),
            "z_needed": round(needed, 3),
            "cycles": cycles,
        }
    )
    level: Level = "firing" if z >= needed else "pending" if z >= FALLBACK_PENDING_Z else "ok"
    reason = (
        f"pass rate {rate(x / n)} over the last {cycles} cycles ({n:.0f} labels) "
        f"against the floor {rate(floor)} (baseline {rate(baseline.pass_rate)} less "
        f"{100 * settings.fallback_drop:.0f} points); z = {z:.2f}, needs {needed:.2f}"
    )
    return Condition(level, exit_ok, reason, evidence)


def _z_above(qualities: Sequence[ScopeQuality], floor: float, se_base: float) -> float | None:
    """How many standard errors the pooled pass rate stands above the floor.

    The score test of "the pass rate is at the floor": the binomial variance is taken at the
    floor, not at the observed rate (the test the Wilson interval inverts: "shown below the floor
    at 95%" is "the one-sided Wilson bound is under it"), plus the baseline's own variance, since
    the floor moves with the baseline. At the observed rate a collapse far below a high floor
    would look noisier than it is under the hypothesis tested, and need a cycle more to show.
    """
    x = sum(q.passes_eff for q in qualities)
    n = sum(q.n_eff for q in qualities)
    if n <= 0:
        return None
    at = min(max(floor, FLOOR_CLAMP), 1 - FLOOR_CLAMP)
    se = math.sqrt(at * (1 - at) / n + se_base**2)
    return (x / n - floor) / se
