"""Pure trigger rules: (settings, baseline, cycle history, previous states) -> new states and mode.

Every rule reads the whole history of cycle results, so a late label that restates an old
cycle is taken into account the next time the rules run, and running them twice on the
same history gives the same answer.

- `retrain`: a family of Bernoulli CUSUMs per scope (monitor.stats.sequential.CusumFamily),
  firing when any member does. The slow-slide member weighs "dropped by the full
  `retrain_drop`" against "dropped by a fifth of it" (ALLOWANCE), so small wiggles gather no
  evidence; the fast members are tuned to collapses, `retrain_drop` doubled from past
  `fallback_drop` up to LARGEST_DROP (20 and 40 points by default), and weigh only the last
  FAST_WINDOW cycles, so that a collapse gathers evidence at the rate a collapse gives it and
  pages within two cycles even at 20 labels a week. The fast members share FAST_THRESHOLD plus
  the log of their number (Bonferroni); their null drift is steep, so their false alarms come
  only from a few very bad cycles, and the family's false-alarm rate is checked by simulation.
  The baseline is itself an estimate, so p0 is the baseline less half its standard error for
  the slow member, a whole one for the fast ones: a baseline that came out high by chance must
  not page anyone. A watcher without the allowance only asks for the larger sample while a
  drop may be starting. Segments add log(#segments) to every
  threshold (a Bonferroni bound on the family's false alarms), and a segment's own baseline
  is pulled towards the feature's.
- `fallback`: the pass rate of the cycles since the change point estimated by the leading
  CUSUM (the member nearest its threshold: after a collapse, a fast one, whose change point is
  sharp), each window from there to now, at most FALLBACK_WINDOWS, Bonferroni over them, is
  shown below the floor (baseline - `fallback_drop`) at 95% one sided by the score test,
  counting the baseline's own error. It leaves once the last two cycles are above the floor at 99%.
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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from monitor.config import FeatureSettings
from monitor.decide.judge_agreement import JudgePairs
from monitor.decide.modes import Facts, Override, resolve_mode
from monitor.decide.retrain import ESCALATE_AT, SEGMENT_ESCALATE_AT, fallback_condition, retrain_conditions
from monitor.decide.trigger_facts import (
    Baseline,
    Condition,
    CycleFacts,
    Decision,
    Level,
    State,
    Transition,
    TriggerState,
    rate,
    run_length,
)

__all__ = [
    "Baseline",
    "Condition",
    "CycleFacts",
    "Decision",
    "Transition",
    "TriggerState",
    "decide",
    "drift_condition",
    "judge_conditions",
    "stale_condition",
    "step",
]


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
                f"judge {name} agrees with the humans on {rate(summary['agreement'])} of {n} items "
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
        for scope, check in retrain.items():
            conditions[("retrain", scope)] = check.condition
            escalate = escalate or check.share >= (ESCALATE_AT if scope == "all" else SEGMENT_ESCALATE_AT)
            if scope == "all" and check.condition.evidence["statistic"] > 0:
                run_start = check.run_start
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
