"""Review sampling: stratified draws with a minimum per stratum, reproducible from the seed,
and inclusion probabilities that keep the weighted estimate unbiased."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from monitor.decide.sampling import (
    OTHER_STRATUM,
    PHASE_ONE_MIN,
    Candidate,
    SamplingPlan,
    allocate,
    draw,
    draw_from_phase_one,
    phase_one_size,
    stratum_of,
)


def population(sizes: dict[str, int], key: str = "language") -> list[Candidate]:
    out: list[Candidate] = []
    for value, size in sizes.items():
        out.extend(Candidate(f"{value}-{i}", {key: value}) for i in range(size))
    return out


def test_same_seed_same_draw_and_another_seed_another_draw() -> None:
    candidates = population({"en": 700, "de": 200, "fr": 100})
    plan = SamplingPlan(size=50)
    first = draw(candidates, plan, seed=7)
    again = draw(candidates, plan, seed=7)
    other = draw(candidates, plan, seed=8)
    assert first == again
    assert {d.output_id for d in first} != {d.output_id for d in other}
    assert len(first) == len(other) == 50


def test_allocation_is_proportional_with_a_minimum_per_stratum() -> None:
    candidates = population({"en": 940, "de": 50, "xx": 10})
    drawn = draw(candidates, SamplingPlan(size=50, min_per_stratum=5), seed=1)
    per = Counter(d.stratum for d in drawn)
    assert sum(per.values()) == 50
    # 10 of 1000 would get half an output in proportion; the minimum gives it 5.
    assert per["language=xx"] == 5
    assert per["language=de"] >= 5
    assert per["language=en"] == 50 - per["language=xx"] - per["language=de"]
    assert per["language=en"] >= 38


def test_a_stratum_smaller_than_the_minimum_is_drawn_whole() -> None:
    candidates = population({"en": 500, "tiny": 2})
    drawn = draw(candidates, SamplingPlan(size=20, min_per_stratum=5), seed=3)
    tiny = [d for d in drawn if d.stratum == "language=tiny"]
    assert len(tiny) == 2
    assert all(d.inclusion_prob == 1.0 for d in tiny)


def test_inclusion_probability_is_the_stratum_sampling_fraction() -> None:
    sizes = {"en": 600, "de": 300, "fr": 100}
    candidates = population(sizes)
    drawn = draw(candidates, SamplingPlan(size=60, min_per_stratum=10), seed=5)
    per = Counter(d.stratum for d in drawn)
    for d in drawn:
        value = d.stratum.split("=")[1]
        assert d.inclusion_prob == pytest.approx(per[d.stratum] / sizes[value])
    # Horvitz-Thompson: the weights of a stratified draw add up to the population, exactly.
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(sum(sizes.values()))


def test_weighted_estimate_is_unbiased_when_small_strata_are_oversampled() -> None:
    """Strata with very different pass rates and a minimum that over-samples the small ones:
    the plain sample mean is biased, the inclusion-weighted one is not."""
    sizes = {"big": 900, "small": 100}
    rates = {"big": 0.95, "small": 0.40}
    gen = np.random.default_rng(11)
    passed = {}
    candidates = []
    for value, size in sizes.items():
        for i in range(size):
            output_id = f"{value}-{i}"
            passed[output_id] = bool(gen.random() < rates[value])
            candidates.append(Candidate(output_id, {"tier": value}))
    truth = sum(passed.values()) / len(passed)
    weighted, plain = [], []
    for seed in range(300):
        drawn = draw(candidates, SamplingPlan(size=40, min_per_stratum=20), seed=seed)
        w = np.array([1 / d.inclusion_prob for d in drawn])
        y = np.array([passed[d.output_id] for d in drawn], dtype=float)
        weighted.append(float((w * y).sum() / w.sum()))
        plain.append(float(y.mean()))
    assert abs(np.mean(weighted) - truth) < 0.01
    assert np.mean(plain) < truth - 0.15  # half the sample from the 10% that fail most


def test_asking_for_more_than_there_is_draws_everything_with_probability_one() -> None:
    candidates = population({"en": 8, "de": 3})
    drawn = draw(candidates, SamplingPlan(size=50), seed=0)
    assert sorted(d.output_id for d in drawn) == sorted(c.output_id for c in candidates)
    assert {d.inclusion_prob for d in drawn} == {1.0}


def test_nothing_to_draw() -> None:
    assert draw([], SamplingPlan(size=50), seed=0) == []
    assert draw(population({"en": 10}), SamplingPlan(size=0), seed=0) == []


def test_stratify_by_chosen_keys_and_missing_values() -> None:
    candidates = [
        Candidate("a", {"language": "en", "channel": "chat"}),
        Candidate("b", {"language": "de", "channel": "chat"}),
        Candidate("c", {"channel": "email"}),
    ]
    drawn = draw(candidates, SamplingPlan(size=3, stratify_by=("language",)), seed=0)
    assert {d.stratum for d in drawn} == {"language=en", "language=de", "language="}
    assert stratum_of({"a": "1"}, []) == "all"


def test_high_cardinality_tags_fold_into_other() -> None:
    candidates = [Candidate(f"id{i}", {"user": f"u{i % 40}"}) for i in range(400)]
    drawn = draw(candidates, SamplingPlan(size=30, max_strata=5, min_per_stratum=1), seed=2)
    strata = {d.stratum for d in drawn}
    assert len(strata) <= 5
    assert OTHER_STRATUM in strata


def test_low_confidence_outputs_get_their_share_and_keep_honest_weights() -> None:
    gen = np.random.default_rng(3)
    candidates = [Candidate(f"id{i}", {}, float(gen.random())) for i in range(1000)]
    drawn = draw(candidates, SamplingPlan(size=100, low_confidence_share=0.5), seed=4)
    low = [d for d in drawn if d.low_confidence]
    assert 45 <= len(low) <= 55  # half the sample from the least confident fifth
    assert all(d.stratum.endswith("|low") for d in low)
    low_prob = {d.inclusion_prob for d in low}
    rest_prob = {d.inclusion_prob for d in drawn if not d.low_confidence}
    assert min(low_prob) > max(rest_prob)
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(1000)


def test_phase_one_is_twenty_times_the_sample_at_least_a_thousand_never_more_than_there_is() -> None:
    assert phase_one_size(50) == 1000 == PHASE_ONE_MIN
    assert phase_one_size(80) == 1600
    assert phase_one_size(80, population=1200) == 1200
    assert phase_one_size(80, population=5000) == 1600
    assert phase_one_size(0) == phase_one_size(-1) == phase_one_size(50, population=0) == 0


def test_phase_two_scales_the_stratified_draws_probabilities_by_m_over_n() -> None:
    phase_one = population({"en": 700, "de": 300})
    plan = SamplingPlan(size=50)
    drawn = draw_from_phase_one(phase_one, 10_000, plan, seed=5)
    within = draw(phase_one, plan, seed=5)
    assert [d.output_id for d in drawn] == [d.output_id for d in within]
    assert [d.inclusion_prob for d in drawn] == pytest.approx([d.inclusion_prob * 0.1 for d in within])
    # The inverse probabilities add up to N, the window the phase-one sample came from.
    assert sum(1 / d.inclusion_prob for d in drawn) == pytest.approx(10_000)
    assert draw_from_phase_one([], 10_000, plan, seed=5) == []


def test_phase_two_never_states_a_probability_above_one() -> None:
    phase_one = population({"en": 40})
    drawn = draw_from_phase_one(phase_one, 20, SamplingPlan(size=50), seed=1)  # N underestimated
    assert {d.inclusion_prob for d in drawn} == {1.0}


@hyp_settings(max_examples=60)
@given(
    sizes=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 400), min_size=1, max_size=8),
    total=st.integers(1, 300),
    minimum=st.integers(0, 10),
)
def test_allocation_invariants(sizes: dict[str, int], total: int, minimum: int) -> None:
    allocation = allocate(sizes, total, minimum)
    assert set(allocation) == set(sizes)
    for name, size in sizes.items():
        assert 0 <= allocation[name] <= size
        assert allocation[name] >= min(size, minimum)
    floor = sum(min(size, minimum) for size in sizes.values())
    # The minimum per stratum wins over the total; otherwise exactly the total (or everything).
    assert sum(allocation.values()) == max(min(total, sum(sizes.values())), floor)
