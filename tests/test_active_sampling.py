"""Active sampling (Zrnic & Candes 2024): reviews go where the judges leave most doubt, with a
uniform floor, and inclusion probabilities that are exact -- checked by enumerating a small
window's possible samples and by simulation -- so the weighted estimates stay unbiased; with an
informative judge the same labels give a narrower interval than the uniform draw."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from monitor.decide.sampling import (
    ACTIVE_FLOOR,
    ACTIVE_PRIOR_LABELS,
    ActiveDesign,
    Candidate,
    CellSpreads,
    Drawn,
    SamplingPlan,
    cell_allocation,
    cell_of,
    draw,
    draw_from_phase_one,
    judge_cell,
    residual_spreads,
)

Z95 = 1.959963984540054
LOW_CUT = 0.2


@dataclass(frozen=True)
class Past:
    """A past cycle's drawn output with its labels (what the store's `ReviewedOutput` carries)."""

    verdicts: dict[str, str] = field(default_factory=dict)
    low_confidence: bool = False


@dataclass(frozen=True)
class World:
    """A window with known truth: humans' verdicts `y`, the judge's `f`, the confidence signal."""

    candidates: list[Candidate]
    y: np.ndarray
    f: np.ndarray
    verdicts: dict[str, tuple[str, ...]]


def world(
    size: int, seed: int, pass_rate: float = 0.85, catches: float = 0.8, false_fail: float = 0.05
) -> World:
    """A judge that says fail on `catches` of the failing outputs and on `false_fail` of the
    passing ones, twice as wrong on the least confident fifth; two segments."""
    gen = np.random.default_rng(seed)
    y = gen.random(size) < pass_rate
    confidence = gen.random(size)
    low = confidence < LOW_CUT
    says_pass = np.where(
        y,
        gen.random(size) >= np.where(low, 2 * false_fail, false_fail),
        gen.random(size) >= np.where(low, catches / 2, catches),
    )
    regions = np.where(gen.random(size) < 0.7, "eu", "us")
    candidates = [Candidate(f"o{i}", {"region": str(regions[i])}, float(confidence[i])) for i in range(size)]
    verdicts = {f"o{i}": ("pass" if says_pass[i] else "fail",) for i in range(size)}
    return World(candidates, y.astype(float), says_pass.astype(float), verdicts)


def history(past: World) -> list[Past]:
    """The past cycles' labelled sample of a world like this one."""
    cut = float(np.quantile([c.confidence for c in past.candidates], LOW_CUT))
    return [
        Past(
            {
                "human:ann": "pass" if past.y[i] else "fail",
                "judge:llm": past.verdicts[c.output_id][0],
            },
            bool(c.confidence is not None and c.confidence <= cut),
        )
        for i, c in enumerate(past.candidates)
    ]


def stratum_share(drawn: list[Drawn]) -> Counter[str]:
    return Counter(d.stratum.split("|judge:")[0] for d in drawn)


# ---------------------------------------------------------------- cells and spreads


def test_the_judges_cell() -> None:
    assert judge_cell(["pass", "pass"]) == "pass"
    assert judge_cell(["fail"]) == "fail"
    assert judge_cell(["pass", "fail"]) == judge_cell(["unsure"]) == judge_cell(["pass", "unsure"]) == "mixed"
    assert judge_cell([]) == "none"
    assert cell_of(["fail"], True) == "judge:fail|low"
    assert cell_of([], False) == "judge:none|rest"


def test_residual_spreads_count_disagreements_per_cell_with_the_prior() -> None:
    past = (
        [Past({"human:a": "pass", "judge:j": "pass"})] * 95
        + [Past({"human:a": "fail", "judge:j": "pass"})] * 5
        + [Past({"human:a": "fail", "judge:j": "fail"}, True)] * 6
        + [Past({"human:a": "pass", "judge:j": "fail"}, True)] * 4
        + [Past({"human:a": "pass", "judge:j": "pass", "judge:k": "fail"})] * 7
        + [Past({"judge:j": "pass"})] * 50  # no human verdict: no evidence
        + [Past({"human:a": "unsure", "judge:j": "fail"})] * 50
        # the first human by name counts, as for the pass rate
        + [Past({"human:b": "fail", "human:a": "pass", "judge:j": "pass"})] * 5
    )
    spreads = residual_spreads(past)
    k = ACTIVE_PRIOR_LABELS
    assert spreads.of("judge:pass|rest") == pytest.approx(math.sqrt((5 + k / 4) / (105 + k)))
    assert spreads.of("judge:fail|low") == pytest.approx(math.sqrt((4 + k / 4) / (10 + k)))
    assert spreads.of("judge:mixed|rest") == pytest.approx(0.5)  # no one verdict: (Y - 1/2)^2 = 1/4
    assert spreads.of("judge:none|low") == spreads.prior == 0.5  # never seen: the prior
    assert set(spreads.by_cell) == {"judge:pass|rest", "judge:fail|low", "judge:mixed|rest"}
    assert residual_spreads([]) == CellSpreads()


def test_cell_allocation_gives_the_floor_then_neyman() -> None:
    sizes = {"a": 800, "b": 200}
    split = cell_allocation(sizes, 50, {"a": 0.1, "b": 0.5}, floor=0.3)
    assert split is not None and sum(split.values()) == 50
    # floors 12 and 3; the 35 left go 80:100 (N_c * sigma_c): 15.6 and 19.4, then rounded
    assert abs(split["a"] - (12 + 35 * 80 / 180)) < 1
    assert abs(split["b"] - (3 + 35 * 100 / 180)) < 1
    assert cell_allocation(sizes, 1000, {"a": 1.0, "b": 1.0}) == sizes
    # one output for three cells cannot keep a floor in each: the stratum is drawn uniformly
    assert cell_allocation({"a": 5, "b": 5, "c": 5}, 1, {"a": 1.0, "b": 1.0, "c": 1.0}) is None


# ---------------------------------------------------------------- today's draw is kept


def test_without_judge_verdicts_the_draw_is_exactly_the_stratified_one() -> None:
    w = world(600, 1)
    plan = SamplingPlan(size=50)
    plain = draw(w.candidates, plan, seed=3)
    for active in (ActiveDesign({}), ActiveDesign({"elsewhere": ("fail",)}), ActiveDesign({"o1": ()})):
        assert draw(w.candidates, plan, seed=3, active=active) == plain
    assert draw_from_phase_one(w.candidates, 6000, plan, 3, ActiveDesign({})) == draw_from_phase_one(
        w.candidates, 6000, plan, 3
    )


def test_a_new_feature_starts_near_uniform() -> None:
    """No past pairs: every cell has the prior's spread, so each stratum is drawn in proportion."""
    w = world(1000, 2)
    drawn = draw(w.candidates, SamplingPlan(size=100), seed=1, active=ActiveDesign(w.verdicts))
    assert len(drawn) == 100
    assert any("|judge:fail|" in d.stratum for d in drawn)
    sizes = Counter(c.segment["region"] for c in w.candidates)
    per_cell = Counter(d.stratum for d in drawn)
    for d in drawn:  # n_c is n_s N_c / N_s up to rounding (the floor's ceiling, largest remainders)
        region = d.stratum.split("|")[0]
        cell_size = per_cell[d.stratum] / d.inclusion_prob
        uniform = stratum_share(drawn)[region] / sizes[region.removeprefix("region=")]
        assert abs(per_cell[d.stratum] - uniform * cell_size) < 2
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(1000)


def test_learnt_spreads_move_reviews_to_where_the_judge_errs() -> None:
    w = world(1000, 3)
    active = ActiveDesign(w.verdicts, residual_spreads(history(world(400, 4))))
    drawn = draw(w.candidates, SamplingPlan(size=50), seed=2, active=active)
    fail = [d for d in drawn if "|judge:fail|" in d.stratum]
    passing = [d for d in drawn if "|judge:pass|" in d.stratum]
    assert np.mean([d.inclusion_prob for d in fail]) > 1.3 * np.mean([d.inclusion_prob for d in passing])
    judged_fail = sum(1 for v in w.verdicts.values() if v == ("fail",))
    assert len(fail) > 1.2 * 50 * judged_fail / 1000  # above the proportional share (8.7: 11 drawn)
    assert stratum_share(drawn) == stratum_share(draw(w.candidates, SamplingPlan(size=50), seed=2))
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(1000)


# ---------------------------------------------------------------- exact probabilities


def test_inclusion_probabilities_are_exact_by_enumeration() -> None:
    """A window of 10: the draw's possible samples (each seed draws one) are every combination of
    the cells' allocations, equally likely; each output's share of them is its probability."""
    candidates = [Candidate(f"o{i}", {"tier": "a" if i < 7 else "b"}, i / 10) for i in range(10)]
    verdicts = {f"o{i}": (("pass",), ("fail",), ("pass", "fail"))[i % 3] for i in range(9)}  # o9: none
    spreads = CellSpreads({"judge:pass|rest": 0.1, "judge:fail|rest": 0.6, "judge:mixed|rest": 0.5})
    plan = SamplingPlan(size=5, min_per_stratum=2)
    active = ActiveDesign(verdicts, spreads, floor=0.3)
    seen: Counter[frozenset[str]] = Counter()
    stated: dict[str, float] = {}
    cell: dict[str, str] = {}
    for seed in range(4000):
        drawn = draw(candidates, plan, seed, active)
        seen[frozenset(d.output_id for d in drawn)] += 1
        for d in drawn:
            assert stated.setdefault(d.output_id, d.inclusion_prob) == d.inclusion_prob
            assert cell.setdefault(d.output_id, d.stratum) == d.stratum
    members = Counter(cell.values())
    take = Counter(cell[o] for o in next(iter(seen)))
    # the design's support: every combination with the allocation's count in each cell
    support = math.prod(math.comb(members[c], take[c]) for c in members)
    assert len(seen) == support  # every possible sample was drawn, and no other
    for sample in seen:
        assert Counter(cell[o] for o in sample) == take
    exact = {o: sum(1 for s in seen if o in s) / len(seen) for o in cell}
    assert stated == pytest.approx(exact, abs=1e-12)
    assert all(p > 0 for p in exact.values())
    assert set(exact) == {c.output_id for c in candidates}  # o9, judged by no one, can be drawn
    # equally likely: a chi-square goodness of fit over the support (df = support - 1)
    counts = np.array(list(seen.values()), dtype=float)
    expected = 4000 / support
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < support - 1 + 4 * math.sqrt(2 * (support - 1))


def test_inclusion_probabilities_match_the_drawing_frequencies() -> None:
    w = world(240, 5)
    active = ActiveDesign(w.verdicts, residual_spreads(history(world(300, 6))))
    plan = SamplingPlan(size=30)
    runs = 3000
    hits: Counter[str] = Counter()
    stated: dict[str, float] = {}
    for seed in range(runs):
        for d in draw(w.candidates, plan, seed, active):
            hits[d.output_id] += 1
            stated[d.output_id] = d.inclusion_prob
    assert len(set(stated.values())) >= 3  # truly unequal probabilities
    z = [(hits[o] / runs - p) / math.sqrt(p * (1 - p) / runs) for o, p in stated.items() if p < 1]
    # 240 outputs: |z| beyond 4.5 has a chance of about 1e-3 among them all
    assert max(abs(v) for v in z) < 4.5
    assert abs(float(np.mean(z))) < 4.5 / math.sqrt(len(z))


@hyp_settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 120), min_size=1, max_size=4),
    total=st.integers(1, 80),
    spread=st.lists(st.floats(1e-9, 1.0), min_size=8, max_size=8),
    seed=st.integers(0, 1000),
)
def test_every_output_keeps_the_floor(sizes: list[int], total: int, spread: list[float], seed: int) -> None:
    """Whatever the spreads (even a judge deemed perfect), each output's probability is at least
    `ACTIVE_FLOOR` of its stratum's uniform rate, and the weights add up to the window."""
    gen = np.random.default_rng(seed)
    candidates = [
        Candidate(f"s{s}-{i}", {"s": str(s)}, float(gen.random()))
        for s, size in enumerate(sizes)
        for i in range(size)
    ]
    verdicts = {
        c.output_id: (("pass",), ("fail",), ("pass", "fail"), ())[int(gen.integers(4))] for c in candidates
    }
    cells = [cell_of(v, low) for v in (["pass"], ["fail"], ["pass", "fail"], []) for low in (True, False)]
    active = ActiveDesign(verdicts, CellSpreads(dict(zip(cells, spread, strict=True))))
    drawn = draw(candidates, SamplingPlan(size=total, min_per_stratum=2), seed, active)
    share = stratum_share(drawn)
    window = Counter(f"s={c.segment['s']}" for c in candidates)
    for d in drawn:
        stratum = d.stratum.split("|judge:")[0]
        assert d.inclusion_prob >= ACTIVE_FLOOR * share[stratum] / window[stratum] - 1e-12
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(len(candidates))
    assert (
        len({d.output_id for d in drawn})
        == len(drawn)
        == min(len(candidates), max(total, sum(min(2, n) for n in sizes)))
    )


# ---------------------------------------------------------------- unbiased, and narrower


def estimates(w: World, drawn: list[Drawn]) -> tuple[float, float, float]:
    """The inclusion-weighted pass rate, the judge-corrected one (the judge's mean over the
    window plus the weighted mean of the humans' residuals: PPI with weight 1, Zrnic & Candes's
    estimator) and the latter's standard error by the with-replacement formula within each
    segment stratum (it does not credit the cells: conservative)."""
    index = {c.output_id: i for i, c in enumerate(w.candidates)}
    rows = np.array([index[d.output_id] for d in drawn])
    weights = np.array([1 / d.inclusion_prob for d in drawn])
    size = len(w.candidates)
    weighted = float((weights * w.y[rows]).sum() / weights.sum())
    residual = weights * (w.y[rows] - w.f[rows])
    corrected = float(w.f.mean() + residual.sum() / size)
    segments = np.array([d.stratum.split("|judge:")[0] for d in drawn])
    variance = 0.0
    for segment in set(segments):
        z = residual[segments == segment]
        if len(z) > 1:
            variance += len(z) / (len(z) - 1) * float(((z - z.mean()) ** 2).sum())
    return weighted, corrected, math.sqrt(variance) / size


def simulate(w: World, plan: SamplingPlan, active: ActiveDesign | None, runs: int) -> np.ndarray:
    return np.array([estimates(w, draw(w.candidates, plan, seed, active)) for seed in range(runs)])


def test_active_draw_is_unbiased_and_narrower_than_uniform_with_an_informative_judge() -> None:
    """N = 1000, pass rate 0.85, a judge catching 80% of failures (2000 draws each). Figures at
    50 labels: SD of the judge-corrected estimate 0.0395 uniform, 0.0324 active (variance 0.67x);
    mean stated 95% width 0.150 and 0.144, coverage 0.93 and 0.97; active at 35 labels is about
    as precise as uniform at 50."""
    w = world(1000, 11)
    truth = float(w.y.mean())
    runs = 2000
    active = ActiveDesign(w.verdicts, residual_spreads(history(world(400, 12))))
    uniform = simulate(w, SamplingPlan(size=50), None, runs)
    chosen = simulate(w, SamplingPlan(size=50), active, runs)
    fewer = simulate(w, SamplingPlan(size=35), active, runs)
    for column in (0, 1):  # both estimates centre on the truth (4 standard errors of the mean)
        for values in (uniform[:, column], chosen[:, column], fewer[:, column]):
            assert abs(values.mean() - truth) < 4 * values.std() / math.sqrt(runs)
    sd_uniform, sd_active = uniform[:, 1].std(), chosen[:, 1].std()
    assert sd_active < 0.9 * sd_uniform
    assert fewer[:, 1].std() < 1.03 * sd_uniform  # 30% fewer labels, the same precision
    assert chosen[:, 2].mean() < uniform[:, 2].mean()  # the stated interval is narrower too
    covered = np.abs(chosen[:, 1] - truth) <= Z95 * chosen[:, 2]
    assert covered.mean() >= 0.93


def test_a_misleading_history_costs_precision_never_the_truth() -> None:
    """The past said the judge was perfect where it now errs (a judge gone lenient): the floor keeps
    every output drawable, so the weighted estimates stay unbiased."""
    w = world(600, 21, catches=0.3)  # now misses most failures
    trusted = CellSpreads({cell_of(["pass"], low): 1e-6 for low in (True, False)})
    runs = 2000
    chosen = simulate(w, SamplingPlan(size=40), ActiveDesign(w.verdicts, trusted), runs)
    truth = float(w.y.mean())
    for column in (0, 1):
        assert abs(chosen[:, column].mean() - truth) < 4 * chosen[:, column].std() / math.sqrt(runs)
