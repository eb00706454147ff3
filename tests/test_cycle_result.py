"""The typed cycle result reads back every stored shape and writes it back exactly: today's, an
older one (before user actions, costs and the action model's version were stored), a cycle not
measured yet, and each result real cycles store (both stores)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metrics_history import build_history
from sqlalchemy import Engine

from monitor.cycle.measure import window_cost
from monitor.cycle.result import CycleOutcome, CycleResult, DoneCycle, WindowCost
from monitor.decide.judge_agreement import JudgePairs
from monitor.store import cycle_queries as q

AT = datetime(2026, 3, 2, 6, tzinfo=UTC)

TODAY: dict[str, Any] = {
    "sample_size": 50,
    "quality": {
        "all": {
            "value": 0.9234575765209845,
            "low": 0.8771314074733129,
            "high": 0.9532479992892454,
            "labelled": 50,
            "passes_eff": 178.14182661327027,
            "n_eff": 192.9074287141573,
            "method": "ppi-actions",
        },
        "segment:language=de": {
            "value": 1.0,
            "low": 0.6755924351161198,
            "high": 1.0,
            "labelled": 8,
            "passes_eff": 8.0,
            "n_eff": 8.0,
            "method": "weighted-wilson",
        },
    },
    "human_labels_received": 50,
    "labels_received": 100,
    "actions": {"all": {"accepted": 371, "edited": 81}, "segment:language=de": {"accepted": 55}},
    "cost": {"cost_usd": 1.8403109999999998, "outputs_with_cost": 508},
    "action_model_version": 1,
    "judges": {
        "grader": {
            "kappa": 0.61,
            "low": 0.4,
            "high": 0.82,
            "agreement": 0.9,
            "n": 50,
            "judged": 50,
            "pairs": [[40, 2], [3, 5]],
        },
        "refusal": {
            "kappa": None,
            "low": None,
            "high": None,
            "agreement": None,
            "n": 0,
            "judged": 50,
            "pairs": [[0, 0], [0, 0]],
        },
    },
    "drift": [
        {
            "signal": "output_length",
            "kind": "numeric",
            "test": "ks",
            "statistic": 0.6552568448608318,
            "p_value": 3.523010638547005e-165,
            "effect": 2.7457791099923456,
            "drifted": True,
            "effect_name": "wasserstein_scaled",
            "p_value_adjusted": 1.9376558512008528e-164,
            "n_reference": 1907,
            "n_current": 508,
            "new_categories": [],
            "primary": True,
        },
        {
            "signal": "segment.language",
            "kind": "categorical",
            "test": "chi2",
            "statistic": None,
            "p_value": None,
            "effect": None,
            "drifted": False,
            "effect_name": "js_distance",
            "p_value_adjusted": None,
            "n_reference": 0,
            "n_current": 508,
            "new_categories": ["ja"],
            "primary": True,
        },
    ],
    "drifted": ["output_length"],
    "baseline_version": 1,
    "alerts": [
        {"trigger": "retrain", "scope": "all", "state": "pending", "reason": "the pass rate fell"},
    ],
    "next_sample_size": 80,
}


def stored(result: dict[str, Any]) -> str:
    """The text a store keeps (key order included)."""
    return json.dumps(result)


def test_todays_stored_result_round_trips_key_for_key() -> None:
    result = CycleResult.from_json(copy.deepcopy(TODAY))
    assert stored(result.to_json()) == stored(TODAY)
    assert result.overall is not None and result.overall.value == TODAY["quality"]["all"]["value"]
    assert result.quality["segment:language=de"].method == "weighted-wilson"
    assert result.cost == WindowCost(1.8403109999999998, 508)
    assert result.action_model_recorded and result.action_model_version == 1
    assert result.judges["grader"].pairs == JudgePairs(40, 2, 3, 5, 50) and result.judges["grader"].n == 50
    assert result.judges["refusal"].kappa is None
    assert result.drift is not None and result.drift.baseline_version == 1
    assert result.drift.drifted == ("output_length",)
    assert [e.signal for e in result.drift_entries] == ["output_length", "segment.language"]
    assert result.drift_entries[1].effect is None and result.drift_entries[1].new_categories == ("ja",)
    assert [a.trigger for a in result.alerts] == ["retrain"] and result.next_sample_size == 80


def test_an_older_result_reads_back_and_writes_back_without_the_newer_keys() -> None:
    """Before user actions, costs and the action model's version were stored; no baseline, no judge."""
    old = {
        key: TODAY[key]
        for key in (
            "sample_size",
            "quality",
            "human_labels_received",
            "labels_received",
            "alerts",
            "next_sample_size",
        )
    }
    result = CycleResult.from_json(old)
    assert stored(result.to_json()) == stored(old)
    assert result.actions is None and result.cost is None and not result.action_model_recorded
    assert result.drift is None and result.drift_entries == () and result.judges == {}
    facts = DoneCycle(AT, AT, AT, AT, 500, result).facts()
    assert not facts.drift_checked and facts.drifted == () and facts.judges == {}


def test_no_action_model_is_not_the_same_as_an_unrecorded_one() -> None:
    none = {**TODAY, "action_model_version": None}
    result = CycleResult.from_json(none)
    assert result.action_model_recorded and result.action_model_version is None
    assert stored(result.to_json()) == stored(none)


def test_a_cycle_not_measured_yet_stores_its_sample_size_alone() -> None:
    drawn = CycleResult.drawn(40)
    assert drawn.to_json() == {"sample_size": 40} and not drawn.measured
    back = CycleResult.from_json({"sample_size": 40})
    assert back == drawn and back.next_sample_size is None and back.overall is None


def test_the_facts_of_a_done_cycle_come_from_its_result() -> None:
    facts = DoneCycle(AT, AT, AT, AT, 500, CycleResult.from_json(TODAY)).facts()
    assert facts.at == AT and facts.outputs == 500
    assert (facts.human_labels_received, facts.labels_received) == (50, 100)
    assert facts.drift_checked and facts.drifted == ("output_length",)
    assert facts.judges["grader"] == JudgePairs(40, 2, 3, 5, 50)
    assert set(facts.quality) == {"all", "segment:language=de"}


def test_every_result_real_cycles_store_round_trips(engine: Engine, tmp_path: Path) -> None:
    history = build_history(engine, tmp_path)
    with engine.connect() as conn:
        rows = q.cycle_rows(conn, "support-reply")
    assert len(rows) == len(history.cycle_times)
    kinds = set()
    for row in rows:
        result = CycleResult.from_json(row["result"])
        assert result.to_json() == row["result"]  # PostgreSQL's JSONB keeps no key order
        outcome = CycleOutcome.from_row(row)
        assert outcome.result == result and outcome.alerts == result.alerts
        kinds |= {"judges"} if result.judges else set()
        kinds |= {"drift"} if result.drift is not None else set()
        kinds |= {"alerts"} if result.alerts else set()
    assert kinds == {"judges", "drift", "alerts"}


def test_window_cost_sums_the_outputs_that_report_one() -> None:
    window = [
        {"signals": {"cost_usd": 0.5}},
        {"signals": {"cost_usd": 1}},
        {"signals": {"latency_ms": 3}},
        {"signals": None},
        {"signals": {"cost_usd": True}},
    ]
    assert window_cost(window).to_json() == {"cost_usd": 1.5, "outputs_with_cost": 2}
