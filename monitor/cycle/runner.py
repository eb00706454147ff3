"""One weekly cycle of one feature: window -> sample -> label -> quality -> drift -> triggers -> store.

`aiqm cycle`, the scheduler and `aiqm backtest` all call `CycleRunner.run` with a different
clock. A cycle is keyed by (feature, scheduled time): running it again changes nothing. Its
sample is stored with the cycle's row in one transaction, labels land in their own (idempotent)
transactions, and the results, trigger states, events and mode land together in a last one,
so a crash anywhere leaves either nothing or a cycle that the next run completes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from monitor.config import FeatureSettings, Settings
from monitor.cycle.auto_baseline import adopt_default_baseline, baseline_of, propose_baseline
from monitor.cycle.drift_check import DriftChecker
from monitor.cycle.measure import (
    action_counts,
    action_model,
    action_model_of,
    judges_of,
    quality_of,
    window_cost,
)
from monitor.cycle.result import (
    CycleOutcome,
    CycleResult,
    DoneCycle,
    JudgeAgreement,
    format_cycle_time,
)
from monitor.cycle.trigger_rows import alerts_of, previous_states, save_decision
from monitor.decide.quality import ScopeQuality
from monitor.decide.sampling import (
    PAST_PAIRS_DAYS,
    ActiveDesign,
    Candidate,
    Drawn,
    SamplingPlan,
    draw,
    draw_from_phase_one,
    phase_one_size,
    residual_spreads,
)
from monitor.decide.schedule import fire_times
from monitor.decide.triggers import Decision, decide
from monitor.errors import InputError
from monitor.intake.privacy import delete_unsampled_text
from monitor.judges.base import Labeller
from monitor.store import cycle_queries as q
from monitor.store import sample_queries as sq
from monitor.store.window_judge_queries import window_has_judge_labels
from monitor.store.writes import ensure_feature, insert_labels

log = logging.getLogger(__name__)


class SampleText(Protocol):
    """Fills in text the store does not keep for a sample's outputs (pull mode's `SampledText`)."""

    def fill(self, store: Engine, feature: str, output_ids: Sequence[str], now: datetime) -> int: ...


def pass_rate_columns(overall: ScopeQuality | None) -> dict[str, Any]:
    """A cycle row's overall numbers (its `all` scope; none without labels)."""
    return {
        "labelled": overall.labelled if overall else 0,
        "pass_rate": overall.value if overall else None,
        "pass_rate_low": overall.low if overall else None,
        "pass_rate_high": overall.high if overall else None,
    }


JUDGED_BASELINE_LOAD = 2
"""With judges, a baseline cycle asks for this many times `sample_size` (not `max_sample_size`):
the judges' verdicts on the whole window stretch each human label (issue 13)."""


def judged_baseline_size(settings: FeatureSettings) -> int:
    """The human labels a baseline cycle asks for when judges label the window."""
    return min(settings.max_sample_size, JUDGED_BASELINE_LOAD * settings.sample_size)


def _judges_helped(result: CycleResult) -> bool:
    return any(quality.judge_weight is not None for quality in result.quality.values())


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
    _drift: DriftChecker = field(default_factory=DriftChecker)

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
        self._label(feature, at)
        with self.engine.begin() as conn:
            row = q.cycle_row(conn, feature, at)
            if row is not None and row["status"] == "done":
                return CycleOutcome.from_row(row)
            outcome = self._finish(conn, feature, settings, at, started)
        if self.settings.privacy.unsampled_text == "delete":
            self._delete_unsampled_text(feature, settings, at)
        return outcome

    # ------------------------------------------------------------------ draw the sample

    def _begin(self, feature: str, settings: FeatureSettings, at: datetime) -> CycleOutcome | None:
        """Start the cycle (draw and store its sample) unless it ran or started already."""
        with self.engine.begin() as conn:
            row = q.cycle_row(conn, feature, at)
            if row is not None and row["status"] == "done":
                return CycleOutcome.from_row(row)
            if row is None:
                later = q.cycle_rows(conn, feature)
                if later and later[-1]["at"] > at:
                    last = format_cycle_time(later[-1]["at"])
                    raise InputError(
                        f"a later cycle of {feature!r} ran already (at {last}); cycles run in time order",
                        field="--at",
                    )
                self._start(conn, feature, settings, at)
        return None

    def _start(self, conn: Connection, feature: str, settings: FeatureSettings, at: datetime) -> None:
        start = at - timedelta(days=settings.window_days)
        ensure_feature(conn, feature, self.clock())
        previous = q.cycle_rows(conn, feature, until=at - timedelta(microseconds=1))
        size = settings.max_sample_size
        if settings.judges or window_has_judge_labels(conn, feature, start, at):
            size = judged_baseline_size(settings)
        if previous:
            asked = CycleResult.from_json(previous[-1]["result"]).next_sample_size
            size = settings.sample_size if asked is None else asked
        seed = self.cycle_seed(feature, at)
        chosen = self._draw(conn, feature, settings, start, at, size, seed)
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
                "result": CycleResult.drawn(size).to_json(),
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

    @staticmethod
    def _draw(
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        start: datetime,
        at: datetime,
        size: int,
        seed: int,
    ) -> list[Drawn]:
        """The review sample of the window [start, at); active (see `monitor.decide.sampling`)
        when judges labelled some of its outputs and the feature allows it."""
        plan = SamplingPlan(
            size=size,
            min_per_stratum=settings.min_per_stratum,
            stratify_by=settings.stratify_by,
            max_strata=settings.max_strata,
            low_confidence_share=settings.low_confidence_oversample,
        )

        def active(verdicts: Mapping[str, Sequence[str]]) -> ActiveDesign | None:
            if not verdicts:
                return None
            since = at - timedelta(days=PAST_PAIRS_DAYS)
            return ActiveDesign(verdicts, residual_spreads(sq.reviewed_between(conn, feature, since, at)))

        if sq.window_span(conn, feature, start, at) > sq.BIG_WINDOW:  # phase one drawn in the store
            first = sq.random_unreviewed(
                conn, feature, start, at, phase_one_size(plan.size), seed, settings.low_confidence_signal
            )
            ids = [c.output_id for c in first.outputs]
            verdicts = sq.judge_verdicts_of(conn, feature, ids) if settings.active_sampling else {}
            return draw_from_phase_one(first.outputs, first.population, plan, seed, active(verdicts))
        candidates = [
            Candidate(c.output_id, c.segment, c.signals.get(settings.low_confidence_signal))
            for c in q.unreviewed_in_window(conn, feature, start, at)
        ]
        verdicts = sq.window_judge_verdicts(conn, feature, start, at) if settings.active_sampling else {}
        return draw(candidates, plan, seed, active(verdicts))

    # ------------------------------------------------------------------ label it

    def _label(self, feature: str, at: datetime) -> None:
        """Fill in the sample's text where the store has none, then let each labeller label it."""
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

    # ------------------------------------------------------------------ measure, decide, store

    def _finish(
        self, conn: Connection, feature: str, settings: FeatureSettings, at: datetime, started: float
    ) -> CycleOutcome:
        row = q.cycle_row(conn, feature, at)
        assert row is not None
        now = self.clock()
        done = self._restate(
            conn, feature, settings, DoneCycle.all_of(q.cycle_rows(conn, feature, until=at)), now
        )
        baseline_row = q.active_baseline(conn, feature)
        window = list(q.window_records(conn, feature, row["window_start"], at))
        result = self._measure(conn, feature, settings, row, done, baseline_row, window)
        this = DoneCycle(at, row["window_start"], row["window_end"], now, len(window), result)
        baseline_row = baseline_row or adopt_default_baseline(conn, feature, settings, [*done, this], now)
        if baseline_row is not None:
            drift = self._drift.check(conn, feature, settings, baseline_row, window)
            this = replace(this, result=replace(result, drift=drift))
            propose_baseline(conn, feature, baseline_row, row["window_start"], at, now)
        decision = self._decide(conn, feature, settings, baseline_row, [*done, this])
        next_size = decision.next_sample_size
        if baseline_row is None and (settings.judges or _judges_helped(this.result)):
            next_size = min(next_size, judged_baseline_size(settings))  # the judges stretch the labels
        result = replace(this.result, alerts=alerts_of(decision), next_sample_size=next_size)
        values = {
            "status": "done",
            "outputs": len(window),
            **pass_rate_columns(result.overall),
            "mode": decision.mode,
            "result": result.to_json(),
            "finished_at": now,
            "duration_seconds": time.perf_counter() - started,
        }
        q.finish_cycle(conn, feature, at, values)
        save_decision(conn, feature, at, now, decision)
        final = q.cycle_row(conn, feature, at)
        assert final is not None
        return CycleOutcome.from_row(final)

    def _measure(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        row: Mapping[str, Any],
        done: Sequence[DoneCycle],
        baseline_row: Mapping[str, Any] | None,
        window: Sequence[Mapping[str, Any]],
    ) -> CycleResult:
        """The cycle's quality, the labels that arrived since the last cycle, the window's user
        actions and cost, and the judges' agreement with the humans."""
        at = row["at"]
        actions = action_counts(window)
        model = action_model(baseline_row)
        since = done[-1].at if done else None
        sample_size = CycleResult.from_json(row["result"]).sample_size
        return CycleResult(
            sample_size=settings.sample_size if sample_size is None else sample_size,
            quality=quality_of(conn, feature, at, settings, row["window_start"], model),
            human_labels_received=q.labels_received(conn, feature, since, at, "human"),
            labels_received=q.labels_received(conn, feature, since, at),
            actions=actions,
            cost=window_cost(window),
            # The baseline whose action model weighed the labels (None: none did); a restatement
            # uses the same one, so only the late labels move the number.
            action_model_version=baseline_row["version"] if model is not None and baseline_row else None,
            judges=self._agreements(conn, feature, at, settings.confidence),
        )

    @staticmethod
    def _agreements(
        conn: Connection, feature: str, at: datetime, confidence: float
    ) -> dict[str, JudgeAgreement]:
        return {
            name: JudgeAgreement.of(pairs, confidence) for name, pairs in judges_of(conn, feature, at).items()
        }

    @staticmethod
    def _decide(
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        baseline_row: Mapping[str, Any] | None,
        cycles: Sequence[DoneCycle],
    ) -> Decision:
        """Move the triggers one cycle on: the history since the baseline's window feeds them,
        the whole history the `stale` trigger."""
        at = cycles[-1].at
        everything = [cycle.facts() for cycle in cycles]
        history = everything
        if baseline_row is not None:
            history = [c for c in history if c.at > baseline_row["window_end"]]
        baseline = baseline_of(baseline_row) if baseline_row else None
        override_row = q.active_override(conn, feature, at)
        override = (override_row.mode, override_row.reason) if override_row else None
        previous = previous_states(conn, feature)
        return decide(settings, baseline, history, previous, override, at, stale_history=everything)

    def _restate(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        done: list[DoneCycle],
        now: datetime,
    ) -> list[DoneCycle]:
        """Labels that arrived after their cycle was computed restate that cycle's quality."""
        if not done:
            return done
        restated = list(done)
        index = {cycle.at: i for i, cycle in enumerate(done)}
        for cycle_at in q.cycles_with_new_labels(conn, feature, done[-1].finished_at):
            if cycle_at not in index:
                continue
            cycle = restated[index[cycle_at]]
            model = action_model_of(conn, feature, cycle.result)
            quality = quality_of(conn, feature, cycle_at, settings, cycle.window_start, model)
            # humans label after the cycle: their agreement with the judges comes later too
            judges = self._agreements(conn, feature, cycle_at, settings.confidence) or cycle.result.judges
            result = replace(cycle.result, quality=quality, judges=judges)
            values = {**pass_rate_columns(result.overall), "result": result.to_json()}
            q.restate_cycle(conn, feature, cycle_at, values, now)
            restated[index[cycle_at]] = replace(cycle, result=result)
        return restated

    # ------------------------------------------------------------------ afterwards

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
