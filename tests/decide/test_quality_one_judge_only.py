"""A sample whose judge labelled items the humans did not (found by `aiqm demo`, whose reviewers
leave half a week unlabelled): the cycle does not fail, and without the window's judge verdicts
(the covariates) each scope's pass rate comes from the humans alone."""

from __future__ import annotations

from monitor.decide.quality import LabelledItem, cycle_quality


def test_a_segment_with_one_judge_only_item_falls_back_to_the_humans() -> None:
    items = [LabelledItem(f"h{i}", {"lang": "de"}, "de", 0.5, i % 4 != 0, i % 4 != 0) for i in range(12)]
    items.append(LabelledItem("j0", {"lang": "de"}, "de", 0.5, None, True))
    items += [LabelledItem(f"e{i}", {"lang": "en"}, "en", 0.5, None, True) for i in range(3)]
    quality = cycle_quality(items, 0.95)
    assert quality["segment:lang=de"].method != "ppi" and quality["segment:lang=de"].labelled == 12
    assert abs(quality["segment:lang=de"].value - 9 / 12) < 1e-9
    assert quality["all"].method != "ppi" and quality["all"].labelled == 12
