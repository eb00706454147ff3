"""One weekly cycle of one feature: window -> sample -> label -> quality -> drift -> triggers -> store.

`aiqm cycle`, the scheduler and `aiqm backtest` all call `run_cycle` with a different clock.
A cycle is keyed by (feature, scheduled time): running it again changes nothing. Its sample
is stored with the cycle's row in one transaction, labels land in their own (idempotent)
transactions, and the results, trigger states, events and mode land together in a last one,
so a crash anywhere leaves either nothing or a cycle that the next run completes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from monitor.config import FeatureSettings, Settings
from monitor.decide.drift import OutputColumns, PreparedReference, compare_columns, prepare_reference
from monitor.decide.judge_agreement import JudgePairs, judge_pairs
from monitor.decide.quality import LabelledItem, ScopeQuality, cycle_quality
from monitor.decide.sampling import Candidate, SamplingPlan, draw, draw_from_phase_one, phase_one_size
from monitor.decide.schedule import fire_times
from monitor.decide.triggers import Baseline, CycleFacts, TriggerState, decide
from monitor.errors import InputError
from monitor.intake.privacy import delete_unsampled_text
from monitor.judges.base import Labeller
from monitor.stats import DriftThresholds, weighted_pass_rate
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store import sample_queries as sq
from monitor.store.writes import ensure_feature, insert_labels

log = logging.getLogger(__name__)


class SampleText(Protocol):
    """Fills in text the store does not keep for a sample's outputs (pull mode's `SampledText`)."""

    def fill(self, store: Engine, feature: str, output_ids: Sequence[str], now: datetime) -> int: ...


@dataclass(frozen=True)
class Alert:
    trigger: str
    scope: str
    state: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"trigger": self.trigger, "scope": self.scope, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class CycleOutcome:
    feature: str
    at: datetime
    window_start: datetime
    window_end: datetime
    outputs: int
    sampled: int
    labelled: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    mode: str
    alerts: tuple[Alert, ...]
    result: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "outputs": self.outputs,
            "sampled": self.sampled,
            "labelled": self.labelled,
            "pass_rate": self.pass_rate,
            "pass_rate_low": self.pass_rate_low,
            "pass_rate_high": self.pass_rate_high,
            "mode": self.mode,
            "alerts": [alert.to_json() for alert in self.alerts],
        }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CycleRunner:
    """Runs cycles against one store; keeps the prepared drift baselines between cycles."""

    engine: Engine
    settings: Settings
    clock: Callable[[], datetime]
    labellers: Sequence[Labeller] = ()
    seed: int = 0
    sample_text: SampleText | None = None
    """Default: pull mode's reader of sampled outputs' text, when it copies no other text."""
    _references: dict[tuple[str, int], PreparedReference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sample_text is None:
            from monitor.intake.pull_sql import sampled_text

            self.sample_text = sampled_text(self.settings)

    def cycle_seed(self, feature: str, at: datetime) -> int:
        digest = hashlib.sha256(f"{self.seed}|{feature}|{at.isoformat()}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    def run(self, feature: str, at: datetime) -> CycleOutcome:
        """Run (or finish, or just report) the cycle of `feature` scheduled at `at`."""
        started = time.perf_counter()
        settings = self.settings.feature(feature)
        try:
            done = self._begin(feature, settings, at)
        except IntegrityError:  # another process started this very cycle a moment ago
            done = None
        if done is not None:
            return done
        with self.engine.connect() as conn:
            drawn = [item.output_id for item in q.sample_of(conn, feature, at)]
        if self.sample_text is not None and drawn:
            try:
                self.sample_text.fill(self.engine, feature, drawn, self.clock())
            except Exception as exc:  # the cycle goes on: quality, drift and triggers need no text
                log.warning(
                    "the text of %s's sampled outputs could not be read from the app's table (%s: %s)",
                    feature,
                    type(exc).__name__,
                    str(exc)[:300],
                )
        for labeller in self.labellers:
            records = labeller.label(feature, drawn, at)
            if records:
                with self.engine.begin() as conn:
                    insert_labels(conn, records, self.clock())
        with self.engine.begin() as conn:
            row = q.cycle_row(conn, feature, at)
            if row is not None and row["status"] == "done":
                return outcome_from_row(row)
            outcome = self._finish(conn, feature, settings, at, started)
        if self.settings.privacy.unsampled_text == "delete":
            self._delete_unsampled_text(feature, settings, at)
        return outcome

    def _delete_unsampled_text(self, feature: str, settings: FeatureSettings, at: datetime) -> None:
        """Drop the text of unsampled outputs that no later cycle can sample any more.

        That is what lies before the next cycle's window (with windows longer than the schedule's
        period they overlap). The span reaches back two periods or windows, so a daemon killed
        between a cycle and this step, or an output logged late, is caught up by the next cycle.
        """
        window = timedelta(days=settings.window_days)
        following = next(
            fire_times(settings.schedule, at + timedelta(seconds=1), at + timedelta(days=400)), None
        )
        if following is None:
            return
        end = min(at, following - window)
        start = end - 2 * max(window, following - at)
        try:
            cleared = delete_unsampled_text(self.engine, feature, start, end)
        except Exception as exc:  # the cycle is done; the next one covers this window again
            log.warning(
                "the text of %s's unsampled outputs could not be deleted (%s: %s)",
                feature,
                type(exc).__name__,
                str(exc)[:300],
            )
            return
        if cleared:
            log.info("deleted the text of %d unsampled outputs of %s", cleared, feature)

    def _begin(self, feature: str, settings: FeatureSettings, at: datetime) -> CycleOutcome | None:
        """Start the cycle (draw and store its sample) unless it ran or started already."""
        with self.engine.begin() as conn:
            row = q.cycle_row(conn, feature, at)
            if row is not None and row["status"] == "done":
                return outcome_from_row(row)
            if row is None:
                later = q.cycle_rows(conn, feature)
                if later and later[-1]["at"] > at:
                    raise InputError(
                        f"a later cycle of {feature!r} ran already (at {_iso(later[-1]['at'])}); "
                        "cycles run in time order",
                        field="--at",
                    )
                self._start(conn, feature, settings, at)
        return None

    def _start(self, conn: Connection, feature: str, settings: FeatureSettings, at: datetime) -> None:
        start = at - timedelta(days=settings.window_days)
        ensure_feature(conn, feature, self.clock())
        previous = q.cycle_rows(conn, feature, until=at - timedelta(microseconds=1))
        size = (
            previous[-1]["result"].get("next_sample_size", settings.sample_size)
            if previous
            else settings.max_sample_size
        )
        plan = SamplingPlan(
            size=size,
            min_per_stratum=settings.min_per_stratum,
            stratify_by=settings.stratify_by,
            max_strata=settings.max_strata,
            low_confidence_share=settings.low_confidence_oversample,
        )
        seed = self.cycle_seed(feature, at)
        if sq.window_span(conn, feature, start, at) > sq.BIG_WINDOW:  # phase one drawn in the store
            first = sq.random_unreviewed(
                conn, feature, start, at, phase_one_size(plan.size), seed, settings.low_confidence_signal
            )
            chosen = draw_from_phase_one(first.outputs, first.population, plan, seed)
        else:
            candidates = [
                Candidate(c.output_id, c.segment, c.signals.get(settings.low_confidence_signal))
                for c in q.unreviewed_in_window(conn, feature, start, at)
            ]
            chosen = draw(candidates, plan, seed)
        now = self.clock()
        q.start_cycle(
            conn,
            {
                "feature": feature,
                "at": at,
                "window_start": start,
                "window_end": at,
                "status": "running",
                "seed": seed,
                "outputs": 0,
                "sampled": len(chosen),
                "labelled": 0,
                "mode": "normal",
                "result": {"sample_size": size},
                "started_at": now,
            },
        )
        q.insert_samples(
            conn,
            feature,
            at,
            (
                {
                    "output_id": d.output_id,
                    "stratum": d.stratum,
                    "inclusion_prob": d.inclusion_prob,
                    "low_confidence": d.low_confidence,
                }
                for d in chosen
            ),
            now,
        )

    def _finish(
        self, conn: Connection, feature: str, settings: FeatureSettings, at: datetime, started: float
    ) -> CycleOutcome:
        row = q.cycle_row(conn, feature, at)
        assert row is not None
        now = self.clock()
        done = q.cycle_rows(conn, feature, until=at)
        previous_at = done[-1]["finished_at"] if done else None
        self._restate(conn, feature, settings, done, previous_at, now)
        baseline_row = q.active_baseline(conn, feature)
        window = list(q.window_records(conn, feature, row["window_start"], at))
        actions = action_counts(window)
        model = action_model(baseline_row)
        quality = _quality_of(conn, feature, at, settings, actions, model)
        outputs = len(window)
        since = done[-1]["at"] if done else None
        human = q.labels_received(conn, feature, since, at, "human")
        received = q.labels_received(conn, feature, since, at)
        result: dict[str, Any] = {
            "sample_size": row["result"].get("sample_size", settings.sample_size),
            "quality": {scope: value.to_json() for scope, value in quality.items()},
            "human_labels_received": human,
            "labels_received": received,
            "actions": actions,
            "cost": window_cost(window),
            # The baseline whose action model weighed the labels (None: none did); a restatement
            # uses the same one, so only the late labels move the number.
            "action_model_version": baseline_row["version"] if model is not None and baseline_row else None,
        }
        judges = _judges_of(conn, feature, at)
        if judges:
            result["judges"] = {name: pairs.to_json(settings.confidence) for name, pairs in judges.items()}
        baseline_row = baseline_row or self._adopt_default_baseline(
            conn, feature, settings, [*done, {**row, "result": result}], now
        )
        baseline = _baseline_from_row(baseline_row) if baseline_row else None
        drifted: tuple[str, ...] = ()
        if baseline_row is not None:
            report = self._drift(conn, feature, settings, baseline_row, window)
            result["drift"] = [entry.to_json() for entry in report.primary]
            result["drifted"] = report.drifted
            drifted = tuple(report.drifted)
            result["baseline_version"] = baseline_row["version"]
            self._propose_baseline(conn, feature, baseline_row, row["window_start"], at, now)
        this = CycleFacts(
            at=at,
            outputs=outputs,
            human_labels_received=human,
            labels_received=received,
            quality=quality,
            drifted=drifted,
            drift_checked=baseline_row is not None,
            judges=judges,
        )
        everything = [_facts(r) for r in done] + [this]
        history = everything
        if baseline_row is not None:
            history = [c for c in history if c.at > baseline_row["window_end"]]
        previous_states = {
            (r["trigger"], r["scope"]): _state_from_row(r) for r in q.trigger_state_rows(conn, feature)
        }
        override_row = q.active_override(conn, feature, at)
        override = (override_row["mode"], override_row["reason"]) if override_row else None
        decision = decide(
            settings, baseline, history, previous_states, override, at, stale_history=everything
        )
        alerts = tuple(
            Alert(s.trigger, s.scope, s.state, s.reason)
            for s in decision.states.values()
            if s.state in ("pending", "firing")
        )
        result["alerts"] = [alert.to_json() for alert in alerts]
        result["next_sample_size"] = decision.next_sample_size
        overall = quality.get("all")
        q.finish_cycle(
            conn,
            feature,
            at,
            {
                "status": "done",
                "outputs": outputs,
                "labelled": overall.labelled if overall else 0,
                "pass_rate": overall.value if overall else None,
                "pass_rate_low": overall.low if overall else None,
                "pass_rate_high": overall.high if overall else None,
                "mode": decision.mode,
                "result": result,
                "finished_at": now,
                "duration_seconds": time.perf_counter() - started,
            },
        )
        q.save_trigger_states(
            conn,
            feature,
            [
                {
                    "trigger": s.trigger,
                    "scope": s.scope,
                    "state": s.state,
                    "since": s.since,
                    "updated_at": now,
                    "reason": s.reason,
                    "evidence": dict(s.evidence),
                    "detector": {"cooldown_left": s.cooldown_left},
                }
                for s in decision.states.values()
            ],
        )
        q.add_trigger_events(
            conn,
            [
                {
                    "feature": feature,
                    "trigger": t.trigger,
                    "scope": t.scope,
                    "from_state": t.from_state,
                    "to_state": t.to_state,
                    "at": now,
                    "cycle_at": at,
                    "owner": t.owner,
                    "reason": t.reason,
                    "evidence": dict(t.evidence),
                }
                for t in decision.transitions
            ],
        )
        q.set_feature_mode(conn, feature, decision.mode, decision.mode_reason, now)
        final = q.cycle_row(conn, feature, at)
        assert final is not None
        return outcome_from_row(final)

    def _restate(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        done: list[dict[str, Any]],
        previous_at: datetime | None,
        now: datetime,
    ) -> None:
        """Labels that arrived after their cycle was computed restate that cycle's quality."""
        if previous_at is None:
            return
        by_at = {row["at"]: row for row in done}
        for cycle_at in q.cycles_with_new_labels(conn, feature, previous_at):
            row = by_at.get(cycle_at)
            if row is None:
                continue
            model = self._action_model_of(conn, feature, row["result"])
            actions = row["result"].get("actions")
            quality = _quality_of(conn, feature, cycle_at, settings, actions, model)
            overall = quality.get("all")
            result = {**row["result"], "quality": {s: v.to_json() for s, v in quality.items()}}
            judges = _judges_of(conn, feature, cycle_at)
            if judges:  # humans label after the cycle: their agreement with the judges comes later too
                result["judges"] = {name: p.to_json(settings.confidence) for name, p in judges.items()}
            row["result"] = result
            values = {
                "labelled": overall.labelled if overall else 0,
                "pass_rate": overall.value if overall else None,
                "pass_rate_low": overall.low if overall else None,
                "pass_rate_high": overall.high if overall else None,
                "result": result,
            }
            row.update(values)
            q.restate_cycle(conn, feature, cycle_at, values, now)

    @staticmethod
    def _action_model_of(
        conn: Connection, feature: str, result: Mapping[str, Any]
    ) -> dict[str, float] | None:
        """The action model a cycle's quality was computed with (the active baseline's for a
        cycle stored before the version was recorded)."""
        if "action_model_version" not in result:
            return action_model(q.active_baseline(conn, feature))
        version = result["action_model_version"]
        return None if version is None else action_model(fq.baseline_row(conn, feature, int(version)))

    def _adopt_default_baseline(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        cycles: list[dict[str, Any]],
        now: datetime,
    ) -> dict[str, Any] | None:
        """CONTRACT 5: the pass rate over the first `baseline_cycles` cycles that had labels."""
        labelled = [c for c in cycles if "all" in c["result"].get("quality", {})]
        if len(labelled) < settings.baseline_cycles:
            return None
        chosen = labelled[: settings.baseline_cycles]
        values = baseline_values(conn, feature, [c["at"] for c in chosen], settings.confidence)
        if values is None:
            return None
        values.update(
            {
                "feature": feature,
                "kind": "auto",
                "status": "active",
                "window_start": chosen[0]["window_start"],
                "window_end": chosen[-1]["window_end"],
                "reason": f"default: the first {settings.baseline_cycles} cycles that had labels",
                "created_at": now,
            }
        )
        q.add_baseline(conn, values)
        return q.active_baseline(conn, feature)

    def _drift(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        baseline_row: Mapping[str, Any],
        window: Sequence[Mapping[str, Any]],
    ) -> Any:
        key = (feature, int(baseline_row["version"]))
        reference = self._references.get(key)
        if reference is None:
            columns = OutputColumns.from_records(
                q.window_records(conn, feature, baseline_row["window_start"], baseline_row["window_end"])
            )
            reference = self._references[key] = prepare_reference(columns)
        current = OutputColumns.from_records(window)
        thresholds = DriftThresholds(
            alpha=settings.drift.alpha,
            numeric_effect=settings.drift.numeric_effect,
            categorical_effect=settings.drift.categorical_effect,
        )
        return compare_columns(reference, current, thresholds)

    def _propose_baseline(
        self,
        conn: Connection,
        feature: str,
        baseline_row: Mapping[str, Any],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> None:
        """A new model or config version proposes a new baseline; it is never adopted silently."""
        before = q.window_versions(conn, feature, baseline_row["window_start"], baseline_row["window_end"])
        current = q.window_versions(conn, feature, start, end)
        changes = []
        for column in ("model_version", "config_version"):
            old = max(before[column], key=before[column].__getitem__) if before[column] else None
            new = max(current[column], key=current[column].__getitem__) if current[column] else None
            if new is not None and new != old:
                changes.append(f"{column} {old} -> {new}")
        if not changes:
            return
        existing = [b for b in q.baseline_history(conn, feature) if b["status"] == "proposed"]
        reason = (
            "proposed after a version change: "
            + ", ".join(changes)
            + "; adopt it with `aiqm baseline accept`, or pin one with `aiqm baseline set`"
        )
        if existing and existing[-1]["reason"] == reason:  # already proposed: keep its window
            return
        q.add_baseline(
            conn,
            {
                "feature": feature,
                "kind": "proposed",
                "status": "proposed",
                "window_start": start,
                "window_end": end,
                "pass_rate": None,
                "pass_rate_low": None,
                "pass_rate_high": None,
                "labelled": 0,
                "segments": {},
                "reason": reason,
                "created_at": now,
            },
        )


def _quality_of(
    conn: Connection,
    feature: str,
    at: datetime,
    settings: FeatureSettings,
    actions: Mapping[str, Mapping[str, int]] | None = None,
    model: Mapping[str, float] | None = None,
) -> dict[str, ScopeQuality]:
    items = _labelled_items(q.sample_of(conn, feature, at), settings.quality_judge_source)
    return cycle_quality(items, settings.confidence, actions, model)


def _judges_of(conn: Connection, feature: str, at: datetime) -> dict[str, JudgePairs]:
    """Per judge, its verdicts on the cycle's sample paired with the humans'."""
    return judge_pairs(item.verdicts for item in q.sample_of(conn, feature, at))


def action_counts(window: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per scope, how many outputs of the window met each user action ("none": not reported)."""
    counts: dict[str, Counter[str]] = {"all": Counter()}
    for record in window:
        action = record.get("user_action") or "none"
        counts["all"][action] += 1
        for key, value in (record.get("segment") or {}).items():
            counts.setdefault(f"segment:{key}={value}", Counter())[action] += 1
    return {scope: dict(counter) for scope, counter in counts.items()}


COST_SIGNAL = "cost_usd"


def window_cost(window: Sequence[Mapping[str, Any]]) -> dict[str, float | int]:
    """What the window's outputs cost (their `signals.cost_usd`), and how many reported a cost.

    Stored with the cycle so that `/metrics` can state cost per output and per accepted output
    without reading the window again.
    """
    total, reported = 0.0, 0
    for record in window:
        value = (record.get("signals") or {}).get(COST_SIGNAL)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            total += float(value)
            reported += 1
    return {"cost_usd": total, "outputs_with_cost": reported}


ACTION_PRIOR = 2.0
"""Pseudo-labels pulling a rarely seen action's pass rate towards the baseline's."""


def action_model(baseline_row: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The baseline's pass rate per user action: the proxy that makes each label worth more."""
    if baseline_row is None or baseline_row["pass_rate"] is None:
        return None
    table = (baseline_row["segments"] or {}).get("actions") or {}
    if len(table) < 2:
        return None
    prior = float(baseline_row["pass_rate"])
    return {
        action: (passes + ACTION_PRIOR * prior) / (n + ACTION_PRIOR) for action, (passes, n) in table.items()
    }


def _labelled_items(sample: Sequence[q.SampledOutput], judge_source: str | None = None) -> list[LabelledItem]:
    """Each drawn output with its human verdict and, if one is named, that judge's verdict."""
    items = []
    for item in sample:
        human = judge = None
        for source, verdict in sorted(item.verdicts.items()):
            if verdict == "unsure":
                continue
            if source.startswith("human:") and human is None:
                human = verdict == "pass"
            elif source == judge_source:
                judge = verdict == "pass"
        items.append(
            LabelledItem(
                item.output_id,
                item.segment,
                item.stratum,
                item.inclusion_prob,
                human,
                judge,
                item.user_action or "none",
            )
        )
    return items


def baseline_values(
    conn: Connection, feature: str, cycle_ats: Sequence[datetime], confidence: float
) -> dict[str, Any] | None:
    """Pass rate (overall and per segment value) of the labelled samples of these cycles."""
    items = [item for at in cycle_ats for item in _labelled_items(q.sample_of(conn, feature, at))]
    return baseline_values_of(items, confidence)


def baseline_values_of(items: Sequence[LabelledItem], confidence: float) -> dict[str, Any] | None:
    """A baseline's numbers from sampled items (None when no human labelled any of them);
    `aiqm baseline set` uses it for the items of a time range."""
    humans = [item for item in items if item.human is not None]
    if not humans:
        return None
    overall = weighted_pass_rate(
        [float(bool(i.human)) for i in humans], [i.inclusion_prob for i in humans], None, confidence
    )
    segments: dict[str, list[float]] = {}
    for scope in sorted({f"segment:{k}={v}" for i in humans for k, v in i.segment.items()}):
        key, _, value = scope.removeprefix("segment:").partition("=")
        members = [i for i in humans if i.segment.get(key) == value]
        estimate = weighted_pass_rate(
            [float(bool(i.human)) for i in members], [i.inclusion_prob for i in members], None, confidence
        )
        segments[scope] = [estimate.value, estimate.n]
    return {
        "pass_rate": overall.value,
        "pass_rate_low": overall.low,
        "pass_rate_high": overall.high,
        "labelled": len(humans),
        "segments": {"n_eff": overall.n, "scopes": segments, "actions": _action_table(humans)},
    }


def _action_table(items: Sequence[LabelledItem]) -> dict[str, list[float]]:
    """Human passes and labels per user action: [passes, labels]."""
    table: dict[str, list[float]] = {}
    for item in items:
        entry = table.setdefault(item.action, [0.0, 0.0])
        entry[0] += float(bool(item.human))
        entry[1] += 1.0
    return table


def _baseline_from_row(row: Mapping[str, Any]) -> Baseline:
    segments = row["segments"] or {}
    scopes = {scope: (float(v[0]), float(v[1])) for scope, v in segments.get("scopes", {}).items()}
    return Baseline(
        version=int(row["version"]),
        pass_rate=float(row["pass_rate"]),
        n_eff=float(segments.get("n_eff", row["labelled"])),
        segments=scopes,
    )


def _facts(row: Mapping[str, Any]) -> CycleFacts:
    result = row["result"]
    quality = {
        scope: ScopeQuality.from_json(scope, data) for scope, data in result.get("quality", {}).items()
    }
    return CycleFacts(
        at=row["at"],
        outputs=int(row["outputs"]),
        human_labels_received=int(result.get("human_labels_received", 0)),
        labels_received=int(result.get("labels_received", 0)),
        quality=quality,
        drifted=tuple(result.get("drifted", ())),
        drift_checked="drift" in result,
        judges={name: JudgePairs.from_json(data) for name, data in result.get("judges", {}).items()},
    )


def _state_from_row(row: Mapping[str, Any]) -> TriggerState:
    return TriggerState(
        trigger=row["trigger"],
        scope=row["scope"],
        state=row["state"],
        since=row["since"],
        reason=row["reason"],
        evidence=row["evidence"],
        cooldown_left=int((row["detector"] or {}).get("cooldown_left", 0)),
    )


def outcome_from_row(row: Mapping[str, Any]) -> CycleOutcome:
    result = row["result"] or {}
    alerts = tuple(Alert(a["trigger"], a["scope"], a["state"], a["reason"]) for a in result.get("alerts", []))
    return CycleOutcome(
        feature=row["feature"],
        at=row["at"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        outputs=int(row["outputs"]),
        sampled=int(row["sampled"]),
        labelled=int(row["labelled"]),
        pass_rate=row["pass_rate"],
        pass_rate_low=row["pass_rate_low"],
        pass_rate_high=row["pass_rate_high"],
        mode=row["mode"],
        alerts=alerts,
        result=result,
    )
