"""The weekly cycle on both stores: idempotent, never samples an output twice, reproducible
from its seed, stratified with honest inclusion probabilities, restated by late labels,
overridden by hand, and completed after a crash without drawing again."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, select

from monitor.config import FeatureSettings, Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import START, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.records import LabelRecord
from monitor.reporting.status import collect_status
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.engine import make_engine
from monitor.store.tables import metadata, outputs, samples
from monitor.store.writes import insert_labels

if TYPE_CHECKING:
    from conftest import CliRunner, Stores

FEATURE = "replies"


def cycle_time(week: int) -> datetime:
    """The default schedule's cycle that covers week `week` of the history (Monday 06:00 after it)."""
    return START + (week + 1) * WEEK + timedelta(hours=6)


def load(engine: Engine, spec: HistorySpec, folder: Path) -> RecordedReviewers:
    """Ingest the spec's outputs; return reviewers who label drawn outputs as the history says."""
    outputs_path, labels_path, _ = write_history(spec, folder)
    summary = import_file(engine, str(outputs_path), OUTPUTS, lambda: START)
    assert summary.rejected == 0 and summary.stored > 0
    return RecordedReviewers.from_file(str(labels_path))


def settings_with(**feature: Any) -> Settings:
    return Settings(features={FEATURE: FeatureSettings(owner="team@example.com", **feature)})


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in metadata.tables.items()
        }


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a cycle writes, to compare before and after running it again."""
    with engine.connect() as conn:
        return {
            "counts": row_counts(engine),
            "cycles": q.cycle_rows(conn, FEATURE),
            "samples": sample_ids(engine),
            "states": sorted(q.trigger_state_rows(conn, FEATURE), key=lambda r: (r["trigger"], r["scope"])),
            "events": q.trigger_event_rows(conn, FEATURE),
            "baselines": q.baseline_history(conn, FEATURE),
            "feature": q.feature_row(conn, FEATURE),
        }


def sample_ids(engine: Engine, at: datetime | None = None) -> list[tuple[str, float]]:
    query = select(samples.c.output_id, samples.c.inclusion_prob).where(samples.c.feature == FEATURE)
    if at is not None:
        query = query.where(samples.c.cycle_at == at)
    with engine.connect() as conn:
        return sorted((row[0], row[1]) for row in conn.execute(query))


SPEC = HistorySpec(FEATURE, weeks=6, volume=120, pass_rate=0.9, segments={"language": {"en": 3, "de": 1}})


def test_running_the_same_cycle_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    reviewers = load(engine, SPEC, tmp_path)
    clock = SimulatedClock(cycle_time(0))
    settings = settings_with()
    for week in range(5):
        clock.now = cycle_time(week)
        CycleRunner(engine, settings, clock, [reviewers]).run(FEATURE, cycle_time(week))
    before = snapshot(engine)
    assert before["counts"]["samples"] > 0 and before["counts"]["labels"] > 0
    assert before["counts"]["baselines"] == 1
    clock.now = cycle_time(5)  # the rerun happens later: still nothing changes
    first_run = CycleRunner(engine, settings, clock, [reviewers]).run(FEATURE, cycle_time(4))
    again = CycleRunner(engine, settings, clock, [reviewers], seed=99).run(FEATURE, cycle_time(4))
    assert first_run == again
    assert snapshot(engine) == before


def test_aiqm_cycle_twice_at_the_same_time_is_idempotent(
    engine: Engine, store_url: str, tmp_path: Path, aiqm: CliRunner
) -> None:
    load(engine, SPEC, tmp_path)
    env = {"AIQM_DATABASE_URL": store_url}
    at = cycle_time(1).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = aiqm("cycle", "--at", at, env=env)
    assert first.code == 0, first.err
    before = row_counts(engine)
    second = aiqm("cycle", "--at", at, "--feature", FEATURE, env=env)
    assert second.code == 0, second.err
    assert json.loads(second.out) == json.loads(first.out)
    assert row_counts(engine) == before
    outcome = json.loads(first.out)
    assert outcome["feature"] == FEATURE and outcome["at"] == at
    assert outcome["sampled"] == before["samples"] > 0
    assert outcome["labelled"] == 0 and outcome["pass_rate"] is None  # nobody has reviewed yet


def test_an_output_is_never_sampled_twice_across_overlapping_windows(engine: Engine, tmp_path: Path) -> None:
    spec = HistorySpec(FEATURE, weeks=5, volume=40, pass_rate=0.9)
    reviewers = load(engine, spec, tmp_path)
    settings = settings_with(window_days=21, sample_size=50, max_sample_size=50)
    clock = SimulatedClock(cycle_time(0))
    runner = CycleRunner(engine, settings, clock, [reviewers])
    seen: set[str] = set()
    for week in range(5):
        at = clock.now = cycle_time(week)
        with engine.connect() as conn:
            in_window = q.count_window(conn, FEATURE, at - timedelta(days=21), at)
        outcome = runner.run(FEATURE, at)
        drawn = {output_id for output_id, _ in sample_ids(engine, at)}
        assert not drawn & seen
        # The window holds up to three weeks; only those never drawn are candidates.
        assert outcome.sampled == len(drawn) == min(50, in_window - len(seen & window_ids(engine, at, 21)))
        seen |= drawn
    assert len(sample_ids(engine)) == len(seen)


def window_ids(engine: Engine, at: datetime, days: int) -> set[str]:
    query = select(outputs.c.output_id).where(
        outputs.c.feature == FEATURE, outputs.c.ts >= at - timedelta(days=days), outputs.c.ts < at
    )
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(query)}


@pytest.fixture
def second_store(stores: Stores, backend: str) -> Iterator[Engine]:
    url = stores.borrow(backend)
    built = make_engine(url)
    yield built
    built.dispose()
    stores.give_back(url)


def test_the_sample_is_reproducible_from_the_seed(
    engine: Engine, second_store: Engine, tmp_path: Path
) -> None:
    settings = settings_with(sample_size=20, max_sample_size=20)
    runs: list[list[list[tuple[str, float]]]] = []
    for store, seed, folder in ((engine, 5, "a"), (second_store, 5, "b")):
        load(store, SPEC, tmp_path / folder)
        clock = SimulatedClock(cycle_time(0))
        draws = []
        for week in range(3):
            clock.now = cycle_time(week)
            CycleRunner(store, settings, clock, seed=seed).run(FEATURE, cycle_time(week))
            draws.append(sample_ids(store, cycle_time(week)))
        runs.append(draws)
    assert runs[0] == runs[1]
    assert all(len(draw) == 20 for draw in runs[0])
    # Another seed draws another sample from the same window.
    with second_store.begin() as conn:
        conn.execute(samples.delete())
        conn.execute(metadata.tables["cycles"].delete())
    clock = SimulatedClock(cycle_time(0))
    CycleRunner(second_store, settings, clock, seed=6).run(FEATURE, cycle_time(0))
    assert sample_ids(second_store, cycle_time(0)) != runs[0][0]


def test_stratified_draw_keeps_a_minimum_per_stratum_with_true_inclusion_probabilities(
    engine: Engine, tmp_path: Path
) -> None:
    spec = HistorySpec(
        FEATURE, weeks=1, volume=400, pass_rate=0.9, segments={"language": {"en": 90, "de": 8, "xx": 2}}
    )
    load(engine, spec, tmp_path)
    settings = settings_with(sample_size=30, max_sample_size=30, min_per_stratum=5)
    at = cycle_time(0)
    CycleRunner(engine, settings, SimulatedClock(at)).run(FEATURE, at)
    with engine.connect() as conn:
        population: dict[str, int] = {}
        in_window = select(outputs.c.segment).where(
            outputs.c.feature == FEATURE, outputs.c.ts >= at - timedelta(days=7), outputs.c.ts < at
        )
        for (segment,) in conn.execute(in_window):
            population[f"language={segment['language']}"] = (
                population.get(f"language={segment['language']}", 0) + 1
            )
        drawn = list(conn.execute(select(samples.c.stratum, samples.c.inclusion_prob)))
    per: dict[str, int] = {}
    for stratum, _ in drawn:
        per[stratum] = per.get(stratum, 0) + 1
    assert sum(per.values()) == 30
    assert set(per) == set(population)
    assert 30 * population["language=xx"] / sum(population.values()) < 2  # in proportion: one, at most
    assert per["language=xx"] == min(5, population["language=xx"])
    for stratum, probability in drawn:
        assert probability == pytest.approx(per[stratum] / population[stratum])
    assert sum(1 / p for _, p in drawn) == pytest.approx(sum(population.values()))


def test_late_labels_restate_the_earlier_cycle(engine: Engine, tmp_path: Path) -> None:
    reviewers = load(engine, SPEC, tmp_path)
    settings = settings_with()
    clock = SimulatedClock(cycle_time(0))
    nobody = CycleRunner(engine, settings, clock)  # the cycle runs before anyone reviewed
    first = nobody.run(FEATURE, cycle_time(0))
    assert first.labelled == 0 and first.pass_rate is None
    late = cycle_time(0) + timedelta(days=2)
    drawn = [output_id for output_id, _ in sample_ids(engine, cycle_time(0))]
    records: list[LabelRecord] = reviewers.label(FEATURE, drawn, late)
    with engine.begin() as conn:
        insert_labels(conn, records, late)
    clock.now = cycle_time(1)
    nobody.run(FEATURE, cycle_time(1))
    with engine.connect() as conn:
        restated = q.cycle_row(conn, FEATURE, cycle_time(0))
    assert restated is not None
    assert restated["restatements"] == 1
    assert restated["restated_at"] == cycle_time(1)
    assert restated["labelled"] == len(records) == first.sampled
    assert restated["pass_rate"] is not None
    assert restated["pass_rate_low"] <= restated["pass_rate"] <= restated["pass_rate_high"]
    assert restated["result"]["quality"]["all"]["labelled"] == len(records)
    report = collect_status(engine, settings, cycle_time(1))
    assert report["features"][FEATURE]["cycles"]["restatements"] == 1
    # Running the later cycle again does not restate it a second time.
    nobody.run(FEATURE, cycle_time(1))
    with engine.connect() as conn:
        again = q.cycle_row(conn, FEATURE, cycle_time(0))
    assert again is not None and again["restatements"] == 1


DROP = HistorySpec(
    FEATURE,
    weeks=10,
    volume=150,
    pass_rate=[(0, 0.93), (5.99, 0.93), (6, 0.45)],
    segments={"language": {"en": 3, "de": 1}},
)


def test_a_manual_override_wins_over_fallback(engine: Engine, tmp_path: Path) -> None:
    reviewers = load(engine, DROP, tmp_path)
    settings = settings_with()
    clock = SimulatedClock(cycle_time(0))
    runner = CycleRunner(engine, settings, clock, [reviewers])
    modes = []
    for week in range(8):
        clock.now = cycle_time(week)
        modes.append(runner.run(FEATURE, cycle_time(week)).mode)
    assert modes[:6] == ["normal"] * 6
    assert modes[-1] == "review"
    with engine.begin() as conn:
        fq.add_override(
            conn, FEATURE, "normal", "known incident, handled by hand", cycle_time(7) + timedelta(days=1)
        )
    clock.now = cycle_time(8)
    outcome = runner.run(FEATURE, cycle_time(8))
    assert outcome.mode == "normal"
    assert any(a.trigger == "fallback" and a.state == "firing" for a in outcome.alerts)
    with engine.connect() as conn:
        feature = q.feature_row(conn, FEATURE)
    assert feature is not None and feature["mode"] == "normal"
    assert feature["mode_reason"] == "manual override: known incident, handled by hand"
    with engine.begin() as conn:
        assert fq.clear_overrides(conn, FEATURE, cycle_time(8) + timedelta(days=1)) == 1
    clock.now = cycle_time(9)
    assert runner.run(FEATURE, cycle_time(9)).mode == "review"


class BrokenJudge:
    def label(self, feature: str, output_ids: Sequence[str], at: datetime) -> list[LabelRecord]:
        raise RuntimeError("judge API down")


def test_a_crash_after_sampling_is_completed_by_a_rerun_without_drawing_again(
    engine: Engine, tmp_path: Path
) -> None:
    reviewers = load(engine, SPEC, tmp_path)
    settings = settings_with()
    at = cycle_time(0)
    clock = SimulatedClock(at)
    with pytest.raises(RuntimeError, match="judge API down"):
        CycleRunner(engine, settings, clock, [BrokenJudge()]).run(FEATURE, at)
    with engine.connect() as conn:
        crashed = q.cycle_row(conn, FEATURE, at)
    assert crashed is not None and crashed["status"] == "running"
    drawn = sample_ids(engine, at)
    assert len(drawn) == crashed["sampled"] > 0
    clock.now = at + timedelta(hours=1)
    outcome = CycleRunner(engine, settings, clock, [reviewers], seed=1234).run(FEATURE, at)
    assert sample_ids(engine, at) == drawn  # completed with the sample drawn before the crash
    assert outcome.sampled == len(drawn)
    assert outcome.labelled == len(drawn)
    with engine.connect() as conn:
        done = q.cycle_row(conn, FEATURE, at)
    assert done is not None and done["status"] == "done"


def test_a_cycle_started_but_never_finished_is_finished_by_the_next_run(
    engine: Engine, tmp_path: Path
) -> None:
    reviewers = load(engine, SPEC, tmp_path)
    settings = settings_with()
    at = cycle_time(0)
    runner = CycleRunner(engine, settings, SimulatedClock(at), [reviewers])
    with engine.begin() as conn:
        runner._start(conn, FEATURE, settings.feature(FEATURE), at)
    drawn = sample_ids(engine, at)
    counts = row_counts(engine)
    outcome = runner.run(FEATURE, at)
    assert sample_ids(engine, at) == drawn
    assert row_counts(engine)["samples"] == counts["samples"]
    assert outcome.labelled == len(drawn) and outcome.pass_rate is not None


def test_aiqm_cycle_snaps_to_the_schedule_and_refuses_to_run_backwards(
    engine: Engine, store_url: str, tmp_path: Path, aiqm: CliRunner
) -> None:
    spec = HistorySpec(feature=FEATURE, weeks=4, volume=120, pass_rate=0.9, seed=5)
    load(engine, spec, tmp_path)
    env = {"AIQM_DATABASE_URL": store_url}
    # An off-schedule time runs the cycle the schedule fired last (Monday 06:00), keyed by it.
    off_schedule = cycle_time(2) + timedelta(days=2, hours=3)
    first = aiqm("cycle", "--feature", FEATURE, "--at", off_schedule.isoformat(), env=env)
    assert first.code == 0, first.err
    assert json.loads(first.out)["at"] == cycle_time(2).strftime("%Y-%m-%dT%H:%M:%SZ")
    again = aiqm(
        "cycle", "--feature", FEATURE, "--at", (cycle_time(2) + timedelta(hours=1)).isoformat(), env=env
    )
    assert again.code == 0 and json.loads(again.out) == json.loads(first.out)
    # An earlier cycle after a later one ran would rewrite the triggers with old history.
    earlier = aiqm("cycle", "--feature", FEATURE, "--at", cycle_time(1).isoformat(), env=env)
    assert earlier.code == 2 and "time order" in earlier.err and "Traceback" not in earlier.err
    with engine.connect() as conn:
        assert [row["at"] for row in q.cycle_rows(conn, FEATURE)] == [cycle_time(2)]


def test_a_restatement_weighs_late_labels_with_the_cycles_own_action_model(
    engine: Engine, tmp_path: Path
) -> None:
    """A baseline set after a cycle ran must not move that cycle's restated number: only its late
    labels may, weighed as the cycle first weighed its labels (by the baseline of that time)."""
    from monitor.cycle.measure import action_model, quality_of

    reviewers = load(engine, SPEC, tmp_path)
    settings = settings_with()
    clock = SimulatedClock(cycle_time(0))
    labelled = CycleRunner(engine, settings, clock, labellers=[reviewers])
    nobody = CycleRunner(engine, settings, clock)
    for week in range(4):
        clock.now = cycle_time(week)
        labelled.run(FEATURE, cycle_time(week))
    clock.now = cycle_time(4)
    first = nobody.run(FEATURE, cycle_time(4))  # nobody reviews this one in time
    with engine.connect() as conn:
        row = q.cycle_row(conn, FEATURE, cycle_time(4))
        old = q.active_baseline(conn, FEATURE)
    assert row is not None and old is not None and action_model(old) is not None
    assert first.labelled == 0 and row["result"]["action_model_version"] == old["version"]
    with engine.begin() as conn:  # a person sets a baseline whose users behave differently
        q.add_baseline(
            conn,
            {
                **{k: v for k, v in old.items() if k not in ("pk", "version")},
                "kind": "manual",
                "segments": {**old["segments"], "actions": {"accepted": [10, 100], "rejected": [90, 100]}},
                "created_at": cycle_time(4),
            },
        )
        new = q.active_baseline(conn, FEATURE)
    assert new is not None and new["version"] == old["version"] + 1
    late = cycle_time(4) + timedelta(days=1)
    drawn = [output_id for output_id, _ in sample_ids(engine, cycle_time(4))]
    with engine.begin() as conn:
        insert_labels(conn, reviewers.label(FEATURE, drawn, late), late)
    clock.now = cycle_time(5)
    nobody.run(FEATURE, cycle_time(5))
    with engine.connect() as conn:
        restated = q.cycle_row(conn, FEATURE, cycle_time(4))
        start = row["window_start"]
        by_old = quality_of(conn, FEATURE, cycle_time(4), settings.feature(FEATURE), start, action_model(old))
        by_new = quality_of(conn, FEATURE, cycle_time(4), settings.feature(FEATURE), start, action_model(new))
    assert restated is not None and restated["restatements"] == 1
    assert restated["pass_rate"] == pytest.approx(by_old["all"].value)
    assert by_new["all"].value != pytest.approx(by_old["all"].value, abs=1e-3)


def texts_by_id(engine: Engine) -> dict[str, tuple[object, object, object, object]]:
    columns = (outputs.c.input, outputs.c.output, outputs.c.input_length, outputs.c.output_length)
    query = select(outputs.c.output_id, *columns).where(outputs.c.feature == FEATURE)
    with engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(query)}


def test_deleting_unsampled_text_keeps_the_sampled_text_and_changes_no_result(
    engine: Engine, second_store: Engine, tmp_path: Path
) -> None:
    """`privacy.unsampled_text: delete` against `keep` on the same history: the same outcomes
    (drift reads the kept lengths), and text only where a cycle sampled or no cycle ran yet."""
    kept, deleted = second_store, engine
    reviewers = load(kept, SPEC, tmp_path / "kept")
    load(deleted, SPEC, tmp_path / "deleted")
    settings = settings_with()
    deleting = settings.model_copy(
        update={"privacy": settings.privacy.model_copy(update={"unsampled_text": "delete"})}
    )
    clock = SimulatedClock(cycle_time(0))
    for week in range(5):  # week 5's outputs wait for a cycle that has not run yet
        clock.now = cycle_time(week)
        on_kept = CycleRunner(kept, settings, clock, [reviewers]).run(FEATURE, cycle_time(week))
        on_deleted = CycleRunner(deleted, deleting, clock, [reviewers]).run(FEATURE, cycle_time(week))
        assert on_deleted.to_json() == on_kept.to_json()
        assert on_deleted.result == on_kept.result
    drift = {entry["signal"]: entry for entry in snapshot(deleted)["cycles"][-1]["result"]["drift"]}
    assert drift["input_length"]["n_reference"] > 0  # the baseline weeks' lengths, their text gone
    everything, remaining = texts_by_id(kept), texts_by_id(deleted)
    sampled = {output_id for output_id, _ in sample_ids(deleted)}
    assert sampled and everything.keys() == remaining.keys()
    last = cycle_time(4)
    for output_id, (text_in, text_out, length_in, length_out) in remaining.items():
        original = everything[output_id]
        assert (length_in, length_out) == original[2:]
        if output_id in sampled:
            assert (text_in, text_out) == original[:2] and text_in is not None
    # every unsampled output up to the last cycle lost its text; those after it kept theirs
    before_last = window_ids(deleted, last, 7 * 7)
    assert before_last - sampled
    for output_id in before_last - sampled:
        assert remaining[output_id][:2] == (None, None)
    assert remaining.keys() - before_last
    for output_id in remaining.keys() - before_last:
        assert remaining[output_id][:2] == everything[output_id][:2] != (None, None)


def test_with_overlapping_windows_text_stays_until_no_later_cycle_can_sample_it(
    engine: Engine, tmp_path: Path
) -> None:
    """Three-week windows on a weekly schedule: a cycle leaves the text of the two weeks the
    next cycles still sample from, and every output they sample has its text."""
    reviewers = load(engine, SPEC, tmp_path)
    settings = settings_with(window_days=21, sample_size=10, max_sample_size=10)
    deleting = settings.model_copy(
        update={"privacy": settings.privacy.model_copy(update={"unsampled_text": "delete"})}
    )
    clock = SimulatedClock(cycle_time(0))
    for week in range(6):
        clock.now = cycle_time(week)
        CycleRunner(engine, deleting, clock, [reviewers]).run(FEATURE, cycle_time(week))
        texts = texts_by_id(engine)
        drawn = {output_id for output_id, _ in sample_ids(engine, cycle_time(week))}
        assert drawn and all(texts[output_id][0] is not None for output_id in drawn)
        next_window = window_ids(engine, cycle_time(week + 1), 21)
        sampled = {output_id for output_id, _ in sample_ids(engine)}
        assert all(texts[output_id][0] is not None for output_id in next_window)
        older = window_ids(engine, cycle_time(week + 1) - timedelta(days=21), 7 * 7) - sampled
        assert all(texts[output_id][:2] == (None, None) for output_id in older)
        assert older or week == 0
