"""The big-window draw (phase one pushed down to the store, phase two the stratified draw over
it), on both stores: reproducible from its seed, never an output twice or one sampled before,
only the window's outputs, and inclusion probabilities whose inverse weights estimate the
window's counts without bias."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, insert

from monitor.config import FeatureSettings, Settings
from monitor.cycle.runner import CycleRunner
from monitor.decide.sampling import Drawn, SamplingPlan, draw_from_phase_one, phase_one_size
from monitor.store import sample_queries as sq
from monitor.store.tables import labels, outputs, samples

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
START = AT - timedelta(days=7)
FEATURE = "replies"
REGIONS = ("eu",) * 14 + ("us",) * 3 + ("apac",) * 2 + ("latam",)


def fill(engine: Engine, rows: int, rng: np.random.Generator) -> dict[str, int]:
    """`rows` outputs in the window (another feature interleaved, some before and after it);
    returns the window's count per region."""
    counts: dict[str, int] = {}
    batch = []
    step = timedelta(days=7) / rows
    for i in range(rows):
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        counts[region] = counts.get(region, 0) + 1
        ts = START + i * step
        for feature in (FEATURE, "other"):
            batch.append(_row(feature, f"{feature}-{i}", ts, region, float(rng.random())))
    for i in range(rows // 10):  # the week before and the day after
        batch.append(_row(FEATURE, f"before-{i}", START - timedelta(hours=1 + i), "eu", 0.5))
        batch.append(_row(FEATURE, f"after-{i}", AT + timedelta(minutes=i), "eu", 0.5))
    with engine.begin() as conn:
        conn.execute(insert(outputs), batch)
    return counts


@dataclass(frozen=True)
class BigDraw:
    chosen: list[Drawn]
    population: int
    phase_one: int


def draw_big_window(
    conn: Connection, plan: SamplingPlan, seed: int, population: int | None = None
) -> BigDraw:
    """Both phases, as the cycle runs them on a big window."""
    first = sq.random_unreviewed(
        conn, FEATURE, START, AT, phase_one_size(plan.size, population), seed, population=population
    )
    chosen = draw_from_phase_one(first.outputs, first.population, plan, seed)
    return BigDraw(chosen, first.population, len(first.outputs))


def _row(feature: str, output_id: str, ts: datetime, region: str, confidence: float) -> dict[str, object]:
    return {
        "feature": feature,
        "output_id": output_id,
        "ts": ts,
        "segment": {"region": region},
        "signals": {"confidence": confidence},
        "ingested_at": ts,
    }


def test_reproducible_distinct_unreviewed_and_in_window(engine: Engine, rng: np.random.Generator) -> None:
    counts = fill(engine, 3000, rng)
    already = [f"{FEATURE}-{i}" for i in range(0, 3000, 7)]
    with engine.begin() as conn:
        conn.execute(
            insert(samples),
            [
                {
                    "feature": FEATURE,
                    "output_id": oid,
                    "cycle_at": START,
                    "stratum": "all",
                    "inclusion_prob": 0.1,
                    "drawn_at": START,
                }
                for oid in already
            ],
        )
    plan = SamplingPlan(size=50, stratify_by=["region"])
    with engine.connect() as conn:
        first = draw_big_window(conn, plan, seed=11)
        again = draw_big_window(conn, plan, seed=11)
        other = draw_big_window(conn, plan, seed=12)
    assert first == again
    assert [d.output_id for d in first.chosen] != [d.output_id for d in other.chosen]
    ids = [d.output_id for d in first.chosen]
    assert len(ids) == len(set(ids)) == 50
    assert not set(ids) & set(already)
    assert all(oid.startswith(f"{FEATURE}-") for oid in ids)  # never the other feature, never outside
    unreviewed = sum(counts.values()) - len(already)
    assert first.population == pytest.approx(unreviewed, rel=0.1)  # estimated from the pk draws
    assert first.phase_one == 1000
    # Inverse probabilities add up to N (double expansion); exactly so when N is given.
    assert sum(1 / d.inclusion_prob for d in first.chosen) == pytest.approx(first.population)
    with engine.connect() as conn:
        assert sq.count_unreviewed(conn, FEATURE, START, AT) == unreviewed
        exact = draw_big_window(conn, plan, seed=11, population=unreviewed)
    assert [d.output_id for d in exact.chosen] == ids
    assert sum(1 / d.inclusion_prob for d in exact.chosen) == pytest.approx(unreviewed)
    assert {d.stratum for d in first.chosen} == {f"region={r}" for r in counts}
    assert all(sum(d.stratum == f"region={r}" for d in first.chosen) >= 3 for r in counts)


def test_whole_window_when_smaller_than_phase_one(engine: Engine, rng: np.random.Generator) -> None:
    fill(engine, 400, rng)
    plan = SamplingPlan(size=400)
    with engine.connect() as conn:
        drawn = draw_big_window(conn, plan, seed=3)
    assert sorted(d.output_id for d in drawn.chosen) == sorted(f"{FEATURE}-{i}" for i in range(400))
    assert all(d.inclusion_prob == 1.0 for d in drawn.chosen)


def test_weighted_counts_are_unbiased(engine: Engine, rng: np.random.Generator) -> None:
    """Over many seeds, the inverse-probability estimate of each region's count centres on it."""
    counts = fill(engine, 2500, rng)
    plan = SamplingPlan(size=20, stratify_by=["region"], min_per_stratum=2)
    estimates: dict[str, list[float]] = {region: [] for region in counts}
    with engine.connect() as conn:
        for seed in range(150):
            drawn = draw_big_window(conn, plan, seed=seed)
            assert drawn.phase_one == 1000
            for region in counts:
                estimates[region].append(
                    sum(1 / d.inclusion_prob for d in drawn.chosen if d.stratum == f"region={region}")
                )
    for region, values in estimates.items():
        mean = float(np.mean(values))
        error = float(np.std(values)) / np.sqrt(len(values))
        assert abs(mean - counts[region]) < 4 * error + 1e-9, (region, mean, counts[region])


def test_cycle_draws_big_windows_in_the_store(
    engine: Engine, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(engine, 3000, rng)
    monkeypatch.setattr(sq, "BIG_WINDOW", 1000)
    settings = Settings(
        features={FEATURE: FeatureSettings(owner="team@example.com", sample_size=50, max_sample_size=50)}
    )
    runner = CycleRunner(engine, settings, lambda: AT, seed=5)
    with engine.connect() as conn:  # what the cycle must draw, worked out before it draws
        expected = draw_big_window(
            conn,
            SamplingPlan(size=50, stratify_by=None, min_per_stratum=3, max_strata=50),
            seed=runner.cycle_seed(FEATURE, AT),
        )
    runner.run(FEATURE, AT)
    with engine.connect() as conn:
        stored = conn.execute(samples.select().where(samples.c.feature == FEATURE)).mappings().all()
    assert len(stored) == 50
    assert {row["output_id"] for row in stored} == {d.output_id for d in expected.chosen}
    assert sum(1 / row["inclusion_prob"] for row in stored) == pytest.approx(3000, rel=0.1)


def test_phase_one_is_a_simple_random_sample_of_unreviewed_outputs_with_their_confidence(
    engine: Engine, rng: np.random.Generator
) -> None:
    counts = fill(engine, 2000, rng)
    with engine.connect() as conn:
        first = sq.random_unreviewed(conn, FEATURE, START, AT, 300, seed=4)
        again = sq.random_unreviewed(conn, FEATURE, START, AT, 300, seed=4)
        counted = sq.random_unreviewed(conn, FEATURE, START, AT, 300, seed=4, population=2000)
        none = sq.random_unreviewed(conn, FEATURE, START, AT, 0, seed=4)
    assert first == again
    ids = [o.output_id for o in first.outputs]
    assert len(ids) == len(set(ids)) == 300
    assert all(oid.startswith(f"{FEATURE}-") for oid in ids)
    assert all(o.segment["region"] in counts for o in first.outputs)
    assert all(o.confidence is not None and 0.0 <= o.confidence < 1.0 for o in first.outputs)
    assert first.population == pytest.approx(2000, rel=0.15)
    assert first.lookups >= 300
    assert counted.outputs == first.outputs and counted.population == 2000  # N given: the same tries
    assert none == sq.RandomSample([], 0, 0)


def test_window_span_is_the_windows_own_pk_range(engine: Engine, rng: np.random.Generator) -> None:
    fill(engine, 1000, rng)  # 2,000 interleaved outputs in the window, 100 before, 100 after
    with engine.connect() as conn:
        span = sq.window_span(conn, FEATURE, START, AT)
        assert 1000 <= span <= 2000
        assert sq.window_span(conn, FEATURE, AT + timedelta(days=30), AT + timedelta(days=31)) == 0


def _label(output_id: str, source: str, verdict: str, feature: str = FEATURE) -> dict[str, object]:
    return {
        "feature": feature,
        "output_id": output_id,
        "source": source,
        "source_kind": source.split(":")[0],
        "verdict": verdict,
        "ts": AT,
        "received_at": AT,
    }


def test_judge_verdicts_of_the_window_and_of_given_outputs(engine: Engine, rng: np.random.Generator) -> None:
    fill(engine, 50, rng)
    with engine.begin() as conn:
        conn.execute(
            insert(labels),
            [
                _label(f"{FEATURE}-1", "judge:rules", "fail"),
                _label(f"{FEATURE}-1", "judge:llm", "pass"),
                _label(f"{FEATURE}-1", "human:ann", "fail"),  # not a judge
                _label(f"{FEATURE}-2", "judge:llm", "unsure"),
                _label(f"{FEATURE}-3", "human:ann", "pass"),
                _label("before-0", "judge:llm", "fail"),  # outside the window
                _label("other-1", "judge:llm", "fail", feature="other"),
            ],
        )
    with engine.connect() as conn:
        window = sq.window_judge_verdicts(conn, FEATURE, START, AT)
        given = sq.judge_verdicts_of(conn, FEATURE, [f"{FEATURE}-1", f"{FEATURE}-3", "before-0", "other-1"])
    # one verdict per judge, in the order of the judges' names
    assert window == {f"{FEATURE}-1": ("pass", "fail"), f"{FEATURE}-2": ("unsure",)}
    assert given == {f"{FEATURE}-1": ("pass", "fail"), "before-0": ("fail",)}


def test_reviewed_between_reads_past_cycles_samples_with_their_labels(
    engine: Engine, rng: np.random.Generator
) -> None:
    fill(engine, 20, rng)
    earlier, last = START - timedelta(days=7), START
    with engine.begin() as conn:
        conn.execute(
            insert(samples),
            [
                {
                    "feature": feature,
                    "output_id": f"{feature}-{i}",
                    "cycle_at": cycle_at,
                    "stratum": "all",
                    "inclusion_prob": 0.5,
                    "low_confidence": i == 1,
                    "drawn_at": cycle_at,
                }
                for feature, i, cycle_at in (
                    (FEATURE, 0, earlier - timedelta(days=30)),  # before `since`
                    (FEATURE, 1, earlier),
                    (FEATURE, 2, last),
                    (FEATURE, 3, AT),  # the cycle drawing now: not past
                    ("other", 4, last),
                )
            ],
        )
        conn.execute(
            insert(labels),
            [
                _label(f"{FEATURE}-1", "human:ann", "fail"),
                _label(f"{FEATURE}-1", "judge:llm", "pass"),
                _label(f"{FEATURE}-0", "human:ann", "fail"),
                _label(f"{FEATURE}-3", "human:ann", "fail"),
            ],
        )
    with engine.connect() as conn:
        found = sq.reviewed_between(conn, FEATURE, earlier - timedelta(days=1), AT)
    assert found == [
        sq.ReviewedOutput(f"{FEATURE}-1", {"human:ann": "fail", "judge:llm": "pass"}, True),
        sq.ReviewedOutput(f"{FEATURE}-2", {}, False),
    ]


def _judged_cycle_samples(engine: Engine, settings: FeatureSettings) -> list[dict[str, object]]:
    runner = CycleRunner(engine, Settings(features={FEATURE: settings}), lambda: AT, seed=5)
    runner.run(FEATURE, AT)
    with engine.connect() as conn:
        rows = conn.execute(samples.select().where(samples.c.feature == FEATURE)).mappings().all()
    return [dict(row) for row in rows]


@pytest.mark.parametrize("big", [False, True])
def test_the_cycle_draws_actively_where_judges_labelled_the_window(
    engine: Engine, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """Judge labels in the store at draw time make the cycle's draw active (cells in the strata,
    unequal exact probabilities, weights adding up to the window); `active_sampling: false` or
    no judge label gives today's draw, output for output."""
    fill(engine, 3000, rng)
    if big:
        monkeypatch.setattr(sq, "BIG_WINDOW", 1000)
    settings = FeatureSettings(owner="team@example.com", sample_size=60, max_sample_size=60, stratify_by=())
    runner = CycleRunner(engine, Settings(features={FEATURE: settings}), lambda: AT, seed=5)
    with engine.connect() as conn:  # the draw without judges, worked out before the cycle
        plain = runner._draw(conn, FEATURE, settings, START, AT, 60, runner.cycle_seed(FEATURE, AT))
        off = runner._draw(
            conn,
            FEATURE,
            settings.model_copy(update={"active_sampling": False}),
            START,
            AT,
            60,
            runner.cycle_seed(FEATURE, AT),
        )
    assert off == plain
    assert {d.stratum for d in plain} == {"all"}
    with engine.begin() as conn:
        conn.execute(
            insert(labels),
            [_label(f"{FEATURE}-{i}", "judge:llm", "fail" if i % 10 == 0 else "pass") for i in range(3000)],
        )
    with engine.connect() as conn:
        assert (
            runner._draw(
                conn,
                FEATURE,
                settings.model_copy(update={"active_sampling": False}),
                START,
                AT,
                60,
                runner.cycle_seed(FEATURE, AT),
            )
            == plain
        )
    stored = _judged_cycle_samples(engine, settings)
    assert len(stored) == 60
    assert {str(row["stratum"]).split("|")[1] for row in stored} == {"judge:pass", "judge:fail"}
    assert len({row["inclusion_prob"] for row in stored}) > 1
    total = sum(1 / float(row["inclusion_prob"]) for row in stored)  # type: ignore[arg-type]
    assert total == pytest.approx(3000, rel=0.1 if big else 1e-9)
    assert any(row["low_confidence"] for row in stored)
