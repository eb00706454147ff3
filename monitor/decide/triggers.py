"""Pure trigger rules: (settings, baseline, cycle history, previous states) -> new states and mode.

Every rule reads the whole history of cycle results, so a late label that restates an old
cycle is taken into account the next time the rules run, and running them twice on the
same history gives the same answer.

- `retrain`: a Bernoulli CUSUM per scope (monitor.stats.sequential) weighing "dropped by the
  full `retrain_drop`" against "dropped by a fifth of it" (ALLOWANCE), so small wiggles gather
  no evidence. The baseline is itself an estimate, so the detector's p0 is the baseline less
  half its standard error: a baseline that came out high by chance must not page anyone. A
  watcher without the allowance only asks for the larger sample while a drop may be starting.
  Segments add log(#segments) to the threshold (a Bonferroni bound on the family's false
  alarms), and a segment's own baseline is pulled towards the feature's.
- `fallback`: the pass rate of the cycles since the CUSUM's estimated change point (each
  window from there to now, at most FALLBACK_WINDOWS, Bonferroni over them) is shown below
  the floor (baseline - `fallback_drop`) at 95% one sided, counting the baseline's own
  error. It leaves once the last two cycles are above the floor at 99%.
- `drift`: a cycle's signals drifted (significant after Benjamini-Hochberg and a large
  enough effect) for `cycles_to_fire` cycles in a row.
- `stale`: `stale_cycles` cycles in a row with no human label received or no output.
- `judge` (scope `judge:<name>`): a judge disagrees with the humans. The items that both a
  human and the judge labelled pass or fail over the last `judge_min_agreement.cycles` cycles
  are pooled and Cohen's kappa computed with its interval (at the feature's `confidence`). It
  fires once at least `min_items` items are paired and the interval's upper bound is below
  `kappa` (the judge is shown to fall short, not just one noisy week); pending while the point
  estimate is below with too few items or too wide an interval. It resolves once the pooled
  kappa is back at `kappa` or above on at least `min_items` items, or once the judge has given
  no verdict for those cycles (it was removed). Kappa, not raw agreement: a judge that says
  `pass` to everything agrees with humans 90% of the time on a 90% feature, and its kappa is 0.

States: ok (not listed), pending, firing, resolved. Entering `firing` and leaving it use
different conditions, and a resolved trigger waits `cooldown_cycles` before it may fire
again, so a trigger does not flap on noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from statistics import NormalDist
from typing import Any, Literal

from monitor.config import FeatureSettings
from monitor.decide.judge_agreement import JudgePairs
from monitor.decide.modes import Facts, Override, resolve_mode
from monitor.decide.quality import ScopeQuality
from monitor.stats.sequential import BernoulliCusum

State = Literal["ok", "pending", "firing", "resolved"]
Level = Literal["ok", "pending", "firing"]

CUSUM_THRESHOLD = 6.0
"""Nats of evidence for `retrain` at scope all. By simulation (tests/test_detection_simulation.py):
a stable feature with a 4-cycle baseline fires less than once in ten years of weekly cycles,
and a one-point-a-week slide is caught within three to eight weeks of its start."""
ALLOWANCE = 0.2
"""The detector weighs "dropped by the full `retrain_drop`" against "dropped by a fifth of it", so
a drop of less than about 60% of `retrain_drop` accumulates no evidence: a slide must really be
heading for the full drop before anyone is paged. Tuned by backtests of slides and steps with
several sampler seeds: larger allowances miss a one-point-a-week slide for weeks longer."""
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
SEGMENT_PRIOR_LABELS = 100
"""A segment's own baseline is pulled towards the feature's by this many pseudo-labels."""
SEGMENT_SHRINK = 1.0
"""...and lowered by this many standard errors of its own labels."""


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


def _rate(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cusum_for(
    p0: float, shrink: float, drop: float, threshold: float, allowance: float = ALLOWANCE
) -> BernoulliCusum | None:
    """The detector for a baseline `p0`, lowered by `shrink` for the baseline's own error."""
    p0c = min(p0 - shrink, 0.999) - allowance * drop
    if p0c - (1 - allowance) * drop <= 0.01:
        return None
    return BernoulliCusum(p0=p0c, delta=(1 - allowance) * drop, threshold=threshold, cap=2 * threshold)


def retrain_conditions(
    settings: FeatureSettings, baseline: Baseline, history: Sequence[CycleFacts]
) -> dict[str, tuple[Condition, float, tuple[int, ...]]]:
    """Per scope: the condition, the CUSUM statistic as a share of its threshold, and run starts."""
    scopes = sorted({scope for cycle in history for scope in cycle.quality if scope != "all"})
    out: dict[str, tuple[Condition, float, tuple[int, ...]]] = {}
    for scope in ["all", *scopes]:
        threshold = CUSUM_THRESHOLD if scope == "all" else CUSUM_THRESHOLD + math.log(max(1, len(scopes)))
        own = baseline.segments.get(scope)
        if scope != "all" and own is not None and own[1] >= settings.segment_min_labels:
            # Partial pooling: a segment's baseline from few labels is noisy, and a high one by
            # chance would page someone; pull it towards the feature's baseline, and lower it by
            # a whole standard error of its own labels.
            n0 = own[1] + SEGMENT_PRIOR_LABELS
            p0 = (own[0] * own[1] + baseline.pass_rate * SEGMENT_PRIOR_LABELS) / n0
            shrink = SEGMENT_SHRINK * math.sqrt(own[0] * (1 - own[0]) / own[1]) if own[1] else 0.0
        else:
            p0, n0 = baseline.pass_rate, baseline.n_eff
            shrink = BASELINE_SHRINK * math.sqrt(p0 * (1 - p0) / n0) if n0 > 0 else 0.0
        detector = _cusum_for(p0, shrink, settings.retrain_drop, threshold)
        if detector is None:
            continue
        counts = [
            (c.quality[scope].passes_eff, c.quality[scope].n_eff) if scope in c.quality else (0.0, 0.0)
            for c in history
        ]
        if not any(n for _, n in counts):
            continue
        path = detector.run(counts)
        statistic = path.last
        # A watcher with no allowance sees a drop building sooner: it only asks for more labels.
        watcher = _cusum_for(p0, shrink, settings.retrain_drop, threshold, allowance=0.0)
        watch = watcher.run(counts).last if watcher else 0.0
        start = path.run_start[-1]
        recent = [c.quality[scope] for c in history[start:] if scope in c.quality]
        x = sum(q.passes_eff for q in recent)
        n = sum(q.n_eff for q in recent)
        level: Level = (
            "firing" if statistic >= threshold else "pending" if statistic >= PENDING_AT * threshold else "ok"
        )
        since_text = f" over the last {len(history) - start} cycles" if recent else ""
        reason = (
            f"pass rate {_rate(x / n) if n else 'n/a'}{since_text} against baseline {_rate(p0)}; "
            f"evidence of a {100 * settings.retrain_drop:.0f}-point drop {statistic:.1f} of {threshold:.1f}"
        )
        evidence = {
            "statistic": round(statistic, 4),
            "threshold": round(threshold, 4),
            "baseline": p0,
            "baseline_n": n0,
            "recent_pass_rate": (x / n) if n else None,
            "recent_n": round(n, 2),
            "cycles": len(history) - start,
            "watch": round(watch, 4),
        }
        condition = Condition(level, statistic <= EXIT_AT * threshold, reason, evidence)
        out[scope] = (condition, max(statistic, watch) / threshold, path.run_start)
    return out


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
        return Condition("ok", exit_ok, f"no evidence of a drop below the floor {_rate(floor)}", evidence)
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
        f"pass rate {_rate(x / n)} over the last {cycles} cycles ({n:.0f} labels) "
        f"against the floor {_rate(floor)} (baseline {_rate(baseline.pass_rate)} less "
        f"{100 * settings.fallback_drop:.0f} points); z = {z:.2f}, needs {needed:.2f}"
    )
    return Condition(level, exit_ok, reason, evidence)


def _z_above(qualities: Sequence[ScopeQuality], floor: float, se_base: float) -> float | None:
    """How many standard errors the pooled pass rate stands above the floor."""
    x = sum(q.passes_eff for q in qualities)
    n = sum(q.n_eff for q in qualities)
    if n <= 0:
        return None
    shrunk = (x + 0.5) / (n + 1)
    se = math.sqrt(shrunk * (1 - shrunk) / n + se_base**2)
    return (x / n - floor) / se


def run_length(history: Sequence[CycleFacts], bad: Any) -> int:
    """How many of the latest cycles in a row satisfy `bad`."""
    count = 0
    for cycle in reversed(history):
        if not bad(cycle):
            break
        count += 1
    return count


def stale_condition(settings: FeatureSettings, history: Sequence[CycleFacts]) -> Condition:
    def starved(cycle: CycleFacts) -> bool:
        return cycle.outputs == 0 or cycle.human_labels_received == 0

    run = run_length(history, starved)
    last = history[-1]
    level: Level = "firing" if run >= settings.stale_cycles else "pending" if run >= 1 else "ok"
    what = "no outputs" if last.outputs == 0 else "no human labels"
    reason = (
        f"{what} for {run} cycle(s) in a row: nobody is feeding the monitor"
        if run
        else f"{last.outputs} outputs and {last.human_labels_received} human labels this cycle"
    )
    evidence = {"cycles": run, "outputs": last.outputs, "human_labels": last.human_labels_received}
    return Condition(level, run == 0, reason, evidence)


def drift_condition(settings: FeatureSettings, history: Sequence[CycleFacts]) -> Condition:
    ignored = set(settings.drift.ignore)

    def drifted(cycle: CycleFacts) -> bool:
        return cycle.drift_checked and any(s not in ignored for s in cycle.drifted)

    run = run_length(history, drifted)
    clean = run_length(history, lambda c: c.drift_checked and not drifted(c))
    signals = [s for s in history[-1].drifted if s not in ignored]
    level: Level = "firing" if run >= settings.drift.cycles_to_fire else "pending" if run >= 1 else "ok"
    reason = (
        f"drifted from the baseline for {run} cycle(s): {', '.join(signals)}"
        if run
        else "inputs and outputs look like the baseline"
    )
    return Condition(
        level, clean >= settings.drift.cycles_to_fire, reason, {"cycles": run, "signals": signals}
    )


JUDGE_PENDING_ITEMS = 10
"""Paired items before a judge whose kappa looks low is shown as pending."""


def judge_conditions(settings: FeatureSettings, history: Sequence[CycleFacts]) -> dict[str, Condition]:
    """Per judge: does it agree with the humans? (see the module's docstring for the rule)."""
    rule = settings.judge_min_agreement
    recent = history[-rule.cycles :]
    names = sorted({name for cycle in history for name in cycle.judges})
    out: dict[str, Condition] = {}
    for name in names:
        pooled = sum((c.judges.get(name, JudgePairs()) for c in recent), JudgePairs())
        summary = pooled.summary(settings.confidence)
        evidence: dict[str, Any] = {
            **summary,
            "judged": pooled.judged,
            "threshold": rule.kappa,
            "min_items": rule.min_items,
            "cycles": len(recent),
        }
        n, kappa, low, high = pooled.n, summary["kappa"], summary["low"], summary["high"]
        enough = n >= rule.min_items
        if pooled.judged == 0:
            reason = f"judge {name} gave no verdict in the last {len(recent)} cycle(s)"
            out[name] = Condition("ok", True, reason, evidence)
        elif n == 0:
            reason = f"no item of the last {len(recent)} cycle(s) has both a human and a {name} verdict"
            out[name] = Condition("ok", False, reason, evidence)
        elif kappa is None:  # both said the same single verdict on every item: full agreement
            reason = f"judge {name} and the humans agree on all {n} items (all one verdict)"
            out[name] = Condition("ok", enough, reason, evidence)
        else:
            level: Level = (
                "firing"
                if enough and high < rule.kappa
                else "pending"
                if kappa < rule.kappa and n >= min(JUDGE_PENDING_ITEMS, rule.min_items)
                else "ok"
            )
            reason = (
                f"judge {name} agrees with the humans on {_rate(summary['agreement'])} of {n} items "
                f"over the last {len(recent)} cycle(s); Cohen's kappa {kappa:.2f} [{low:.2f}, {high:.2f}] "
                f"against {rule.kappa:.2f} required"
                + ("" if enough else f" (fires from {rule.min_items} items)")
            )
            out[name] = Condition(level, enough and kappa >= rule.kappa, reason, evidence)
    return out


def step(
    previous: TriggerState | None,
    trigger: str,
    scope: str,
    condition: Condition,
    now: datetime,
    cooldown_cycles: int,
) -> TriggerState:
    """One trigger's state machine: enter and leave `firing` on different conditions, then cool down."""
    prior: State = previous.state if previous else "ok"
    cooldown_left = max(0, previous.cooldown_left - 1) if previous else 0
    new: State
    if prior == "firing":
        new = "resolved" if condition.exit_ok else "firing"
        if new == "resolved":
            cooldown_left = cooldown_cycles + 1
    else:
        new = condition.level
        if new == "firing" and cooldown_left > 0:
            new = "pending"
    since = now if previous is None or new != prior else previous.since
    return TriggerState(
        trigger=trigger,
        scope=scope,
        state=new,
        since=since,
        reason=condition.reason,
        evidence=dict(condition.evidence),
        cooldown_left=cooldown_left,
    )


def decide(
    settings: FeatureSettings,
    baseline: Baseline | None,
    history: Sequence[CycleFacts],
    previous: Mapping[tuple[str, str], TriggerState],
    override: tuple[str, str] | None,
    now: datetime,
    stale_history: Sequence[CycleFacts] | None = None,
) -> Decision:
    """Move every trigger one cycle on, and say what the feature's mode is now."""
    conditions: dict[tuple[str, str], Condition] = {}
    escalate = baseline is None
    fed = stale_history if stale_history is not None else history
    if fed:
        conditions[("stale", "all")] = stale_condition(settings, fed)
        for name, condition in judge_conditions(settings, fed).items():
            conditions[("judge", f"judge:{name}")] = condition
    if baseline is not None and history:
        retrain = retrain_conditions(settings, baseline, history)
        run_start = None
        for scope, (condition, share, starts) in retrain.items():
            conditions[("retrain", scope)] = condition
            escalate = escalate or share >= (ESCALATE_AT if scope == "all" else SEGMENT_ESCALATE_AT)
            if scope == "all" and condition.evidence["statistic"] > 0:
                run_start = starts[-1]
        fallback = fallback_condition(settings, baseline, history, run_start)
        conditions[("fallback", "all")] = fallback
        escalate = escalate or fallback.level != "ok"
        conditions[("drift", "all")] = drift_condition(settings, history)
    states: dict[tuple[str, str], TriggerState] = {}
    transitions: list[Transition] = []
    for key, condition in conditions.items():
        before = previous.get(key)
        after = step(before, key[0], key[1], condition, now, settings.cooldown_cycles)
        states[key] = after
        prior: State = before.state if before else "ok"
        if after.state != prior:
            owner = settings.decision_owner or settings.owner if key[0] == "fallback" else settings.owner
            transitions.append(
                Transition(key[0], key[1], prior, after.state, condition.reason, condition.evidence, owner)
            )
    for key, before in previous.items():  # a scope that no longer has a condition keeps its state
        if key not in states:
            states[key] = replace(before)
    # The mode this cycle stores: nothing stored counts any more, the triggers just moved.
    facts = Facts(
        override=Override(override[0], override[1]) if override is not None else None,
        triggers=list(states.values()),
        has_cycle=True,
    )
    mode = resolve_mode(facts, settings.fallback_mode)
    starved = ("stale", "all") in conditions and conditions[("stale", "all")].level != "ok"
    size = settings.max_sample_size if escalate and not starved else settings.sample_size
    return Decision(states, transitions, mode.mode, mode.reason, mode.by_override, size)
