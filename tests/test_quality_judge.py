"""Which judge the pass rate leans on: the one named, else the first LLM judge, never one by chance."""

from __future__ import annotations

from monitor.config import FeatureSettings
from monitor.cycle.measure import labelled_items
from monitor.store.cycle_queries import SampledOutput


def _settings(**extra: object) -> FeatureSettings:
    return FeatureSettings.model_validate(
        {
            "judges": [
                {"kind": "length", "min_chars": 1},
                {
                    "kind": "llm",
                    "name": "gpt",
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "rubric": "helpful?",
                },
            ],
            **extra,
        }
    )


def test_the_first_llm_judge_is_the_default_and_a_named_one_wins() -> None:
    assert _settings().quality_judge_source == "judge:gpt"
    assert _settings(quality_judge="length").quality_judge_source == "judge:length"
    assert FeatureSettings(judges=()).quality_judge_source is None


def test_only_the_chosen_judges_verdicts_reach_the_estimate() -> None:
    drawn = SampledOutput(
        "o1", "all", 0.5, {}, {"human:ana": "fail", "judge:length": "pass", "judge:gpt": "fail"}, "accepted"
    )
    [item] = labelled_items([drawn], "judge:gpt")
    assert (item.human, item.judge) == (False, False)
    [item] = labelled_items([drawn], None)
    assert item.judge is None
    unsure = SampledOutput("o2", "all", 0.5, {}, {"human:ana": "unsure", "judge:gpt": "pass"}, None)
    [item] = labelled_items([unsure], "judge:gpt")
    assert (item.human, item.judge, item.action) == (None, True, "none")
