"""Drift between two sets of logged outputs (the records of CONTRACT section 1, as dicts)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.cli import main
from monitor.config import DriftSettings
from monitor.decide.drift import (
    DEFAULT_THRESHOLDS,
    DriftReport,
    OutputColumns,
    compare_columns,
    format_report,
    prepare_reference,
    text_length,
)

CONTRACT_KEYS = {"signal", "kind", "test", "statistic", "p_value", "effect", "drifted"}
WORDS = ["refund", "invoice", "password", "delivery", "upgrade", "cancel", "überweisung", "résumé"]


def simulate(
    seed: int, n: int, *, output_stretch: float = 1.0, confidence_shift: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Logged outputs of a ticket-triage feature; only output length and confidence can be moved."""
    rng = np.random.default_rng(seed)
    languages = rng.choice(["en", "de", "fr", "es"], size=n, p=[0.55, 0.25, 0.12, 0.08])
    channels = rng.choice(["email", "chat"], size=n, p=[0.7, 0.3])
    actions = rng.choice(["accepted", "edited", "rejected", "ignored"], size=n, p=[0.7, 0.15, 0.1, 0.05])
    input_words = rng.poisson(12, size=n) + 1
    output_words = np.maximum(1, rng.lognormal(np.log(40 * output_stretch), 0.4, size=n)).astype(int)
    confidence = np.clip(rng.beta(9, 2, size=n) + confidence_shift, 0, 1)
    latency = rng.lognormal(np.log(900), 0.35, size=n)
    tokens_in = rng.lognormal(np.log(300), 0.5, size=n).astype(int)
    tokens_out = rng.lognormal(np.log(120), 0.4, size=n).astype(int)
    for i in range(n):
        words = rng.choice(WORDS, size=input_words[i])
        record: dict[str, Any] = {
            "id": f"out-{seed}-{i}",
            "feature": "ticket-triage",
            "ts": f"2026-02-{1 + i % 28:02d}T10:00:00Z",
            "input": " ".join(words),
            "output": {"category": "billing", "reply": "ok " * int(output_words[i])},
            "model_version": "model-2026-01",
            "config_version": "prompt-v3",
            "segment": {"language": str(languages[i]), "channel": str(channels[i])},
            "signals": {
                "confidence": round(float(confidence[i]), 4),
                "latency_ms": round(float(latency[i]), 1),
                "tokens_in": int(tokens_in[i]),
                "tokens_out": int(tokens_out[i]),
            },
            "user_action": str(actions[i]),
        }
        yield record


def _report(reference: Iterator[dict[str, Any]], current: Iterator[dict[str, Any]]) -> DriftReport:
    return compare_columns(
        prepare_reference(OutputColumns.from_records(reference)), OutputColumns.from_records(current)
    )


def test_columns_from_records() -> None:
    records: list[dict[str, Any]] = [
        {
            "input": "héllo",
            "output": {"text": "ü"},
            "signals": {"a": 1, "b": True, "c": 2.5},
            "segment": {"k": "v"},
        },
        {"input": ["x", 1], "user_action": "accepted", "model_version": "m1", "signals": {"a": float("nan")}},
        {"output": "", "config_version": "c1", "segment": {"k": "w"}},
        {},
    ]
    columns = OutputColumns.from_records(iter(records))
    assert columns.records == 4
    assert columns.numeric["input_length"].tolist() == [5.0, float(len('["x", 1]'))]
    assert columns.numeric["output_length"].tolist() == [float(len('{"text": "ü"}')), 0.0]
    assert columns.numeric["signals.a"].tolist() == [1.0]  # NaN dropped
    assert "signals.b" not in columns.numeric  # booleans are not numbers here
    assert columns.numeric["signals.c"].tolist() == [2.5]
    assert columns.categorical == {
        "segment.k": Counter({"v": 1, "w": 1}),
        "user_action": Counter({"accepted": 1}),
        "model_version": Counter({"m1": 1}),
        "config_version": Counter({"c1": 1}),
    }
    assert text_length("ñandú") == 5 and text_length({"a": "ß"}) == len('{"a": "ß"}')


def test_output_shift_flags_exactly_the_shifted_signals() -> None:
    report = _report(simulate(1, 2000), simulate(2, 2000, output_stretch=1.6, confidence_shift=-0.08))
    assert report.drifted == ["output_length", "signals.confidence"]
    names = {r.signal for r in report.primary}
    assert names == {
        "input_length",
        "output_length",
        "signals.confidence",
        "signals.latency_ms",
        "signals.tokens_in",
        "signals.tokens_out",
        "segment.language",
        "segment.channel",
        "user_action",
        "config_version",
        "model_version",
    }
    for entry in report.primary:
        assert entry.test == ("ks" if entry.kind == "numeric" else "chi2")
        assert entry.n_reference == entry.n_current == 2000


def test_stable_pairs_keep_the_false_alarm_budget_over_200_seeds() -> None:
    # 11 primary tests per comparison; at the default alpha = 0.01 (BH) the chance of any alarm
    # in one stable comparison is at most 1 %, and the effect thresholds lower it further. At
    # 1 %, 7 or more alarming comparisons out of 200 has a chance under 0.5 %.
    alarming = 0
    for seed in range(200):
        report = _report(simulate(1000 + seed, 600), simulate(5000 + seed, 600))
        alarming += any(r.drifted for r in report.signals)
    assert DEFAULT_THRESHOLDS.alpha == DriftSettings().alpha == 0.01
    assert alarming <= 6


def test_json_is_the_contract_shape() -> None:
    report = _report(simulate(3, 300), simulate(4, 300, output_stretch=2.0))
    payload = report.to_json()
    text = json.dumps(payload, allow_nan=False)
    assert list(json.loads(text)) == ["signals"]
    for entry in payload["signals"]:
        assert entry.keys() >= CONTRACT_KEYS
        assert entry["kind"] in ("numeric", "categorical")
        assert isinstance(entry["drifted"], bool)
        if entry["test"] in ("ks", "chi2"):
            assert 0.0 <= entry["p_value"] <= 1.0
        else:
            assert entry["p_value"] is None
    ks = next(e for e in payload["signals"] if e["signal"] == "output_length" and e["test"] == "ks")
    assert ks["drifted"] is True and ks["effect_name"] == "wasserstein_scaled"


def test_signals_present_on_one_side_only() -> None:
    reference = [
        {"signals": {"old": float(i), "both": float(i % 10)}, "segment": {"language": "en"}}
        for i in range(50)
    ]
    current = [
        {
            "signals": {"new": float(i), "both": float(i % 10)},
            "segment": {"language": "pt"},
            "user_action": "edited",
        }
        for i in range(40)
    ]
    report = compare_columns(
        prepare_reference(OutputColumns.from_records(reference)), OutputColumns.from_records(current)
    )
    by_name = {r.signal: r for r in report.primary}
    assert by_name["signals.old"].n_current == 0 and by_name["signals.old"].p_value is None
    assert by_name["signals.new"].n_reference == 0 and not by_name["signals.new"].drifted
    assert by_name["signals.both"].statistic == 0.0 and not by_name["signals.both"].drifted
    assert by_name["segment.language"].new_categories == ("pt",)
    assert by_name["segment.language"].drifted
    assert by_name["user_action"].new_categories == ("edited",) and by_name["user_action"].p_value is None
    json.dumps(report.to_json(), allow_nan=False)
    assert "new in segment.language: pt" in format_report(report)


def test_empty_sides_do_not_crash() -> None:
    empty = compare_columns(prepare_reference(OutputColumns.from_records([])), OutputColumns.from_records([]))
    assert empty.signals == [] and empty.to_json() == {"signals": []}
    assert "drifted signals: none" in format_report(empty)
    reference = prepare_reference(OutputColumns.from_records(simulate(5, 100)))
    report = compare_columns(reference, OutputColumns.from_records([]))
    assert report.drifted == [] and all(r.p_value is None for r in report.signals)


def test_thresholds_are_passed_through() -> None:
    reference = prepare_reference(OutputColumns.from_records(simulate(6, 1500)))
    current = OutputColumns.from_records(simulate(7, 1500, output_stretch=1.15))
    assert "output_length" in compare_columns(reference, current).drifted
    strict = replace(DEFAULT_THRESHOLDS, numeric_effect=5.0)
    assert compare_columns(reference, current, strict).drifted == []


def test_format_report_is_a_fixed_width_table() -> None:
    report = _report(simulate(8, 400), simulate(9, 400, confidence_shift=-0.2))
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].split() == [
        "signal",
        "test",
        "statistic",
        "p",
        "p_adj",
        "effect",
        "n_ref",
        "n_cur",
        "verdict",
    ]
    assert set(lines[1].replace(" ", "")) == {"-"}
    confidence = next(line for line in lines if line.startswith("signals.confidence "))
    assert confidence.split()[1] == "ks" and confidence.endswith("DRIFTED")
    assert lines[-1].endswith("drifted signals: signals.confidence")
    primary_only = format_report(report, secondary=False).splitlines()
    assert len(primary_only) == len(report.primary) + 3
    widths = {len(line) for line in primary_only[2:-1]}
    assert len(widths) <= 2  # rows are aligned; rstrip may shorten ok/DRIFTED by the verdict width


@pytest.mark.parametrize("bins", [4, 10, 20])
def test_prepared_reference_is_reusable(bins: int) -> None:
    reference = prepare_reference(OutputColumns.from_records(simulate(10, 800)), bins=bins)
    first = compare_columns(reference, OutputColumns.from_records(simulate(11, 500)))
    second = compare_columns(reference, OutputColumns.from_records(simulate(11, 500)))
    assert first == second
    assert all(ref.edges.size <= bins - 1 for ref in reference.numeric.values())


def test_aiqm_drift_uses_the_configured_drift_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIQM_CONFIG", raising=False)
    reference, current = tmp_path / "reference.jsonl", tmp_path / "current.jsonl"
    reference.write_text("".join(json.dumps(r) + "\n" for r in simulate(6, 1500)))
    current.write_text("".join(json.dumps(r) + "\n" for r in simulate(7, 1500, output_stretch=1.15)))

    def drifted(*options: str) -> list[str]:
        assert main(["drift", str(reference), str(current), "--json", *options]) == 0
        entries = json.loads(capsys.readouterr().out)["signals"]
        return sorted({e["signal"] for e in entries if e["drifted"] and e["test"] in ("ks", "chi2")})

    assert "output_length" in drifted()  # the defaults: the daemon's
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(
        "defaults:\n  drift: {numeric_effect: 5.0}\nfeatures:\n  strict:\n    drift: {numeric_effect: 0.01}\n"
    )
    assert "output_length" not in drifted("--config", str(lenient))
    assert "output_length" in drifted("--config", str(lenient), "--feature", "strict")
