"""A production-history simulator with known truth, for the demo, the tests and the benchmarks.

A `HistorySpec` describes one feature week by week: volume, segment mix, the true pass rate
(overall and per segment), how long and how confident its outputs are, which versions ran,
and how much of it reviewers label. `simulate` turns it into logged outputs and labels in the
contract's formats, plus the true weekly pass rates. The same spec and seed give the same files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from monitor.demo.texts import TOPICS, Draft, writer_for

Curve = float | Sequence[tuple[float, float]]
"""A constant, or piecewise-linear points (week, value)."""

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)


def curve_at(points: Curve, week: float) -> float:
    """The value of a curve at `week`: constant, or linear between its points, flat outside them."""
    if isinstance(points, int | float):
        return float(points)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return float(np.interp(week, xs, ys))


@dataclass(frozen=True)
class SegmentRule:
    """A segment value whose pass rate follows its own curve."""

    key: str
    value: str
    pass_rate: Curve


@dataclass(frozen=True)
class HistorySpec:
    feature: str
    weeks: int
    volume: Curve
    pass_rate: Curve
    segments: Mapping[str, Mapping[str, Curve]] = field(default_factory=dict)
    segment_rules: Sequence[SegmentRule] = ()
    length_factor: Curve = 1.0
    confidence_shift: Curve = 0.0
    label_fraction: float = 1.0
    labels_until_week: int | None = None
    config_versions: Mapping[int, str] = field(default_factory=lambda: {0: "prompt-v1"})
    model_versions: Mapping[int, str] = field(default_factory=lambda: {0: "model-2026-01"})
    seed: int = 0
    start: datetime = START


@dataclass(frozen=True)
class WeekTruth:
    week: int
    outputs: int
    true_rate: float
    observed_rate: float | None


def _version(steps: Mapping[int, str], week: int) -> str:
    return steps[max(w for w in steps if w <= week)]


def _pick(rng: np.random.Generator, mix: Mapping[str, Curve], week: int, size: int) -> np.ndarray:
    names = list(mix)
    weights = np.array([max(0.0, curve_at(mix[n], week)) for n in names])
    return np.array(names, dtype=object)[rng.choice(len(names), size=size, p=weights / weights.sum())]


def simulate(spec: HistorySpec) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(output, label or None) pairs, week by week, in time order within each week."""
    rng = np.random.default_rng(spec.seed)
    n = 0
    for week in range(spec.weeks):
        volume = int(curve_at(spec.volume, week) * rng.uniform(0.9, 1.1))
        if volume <= 0:
            continue
        draws = _WeekDraws.draw(rng, spec, week, volume)
        labels_open = spec.labels_until_week is None or week < spec.labels_until_week
        for i in range(volume):
            n += 1
            output = draws.output(spec, f"{spec.feature}-{n:07d}", i)
            label = _label(spec.feature, output["id"], bool(draws.ok[i])) if draws.labelled[i] else None
            yield output, label if labels_open else None


# What users do with an output, as cumulative shares: mostly accept a good one, reject or redo a bad one.
ACTIONS_IF_GOOD = (("accepted", 0.80), ("edited", 0.94), ("ignored", 1.0))
ACTIONS_IF_BAD = (("rejected", 0.40), ("edited", 0.73), ("retried", 0.95), ("ignored", 1.0))


def _action(ok: bool, draw: float) -> str:
    """The action whose cumulative share first exceeds the uniform draw in [0, 1)."""
    table = ACTIONS_IF_GOOD if ok else ACTIONS_IF_BAD
    return next((name for name, upto in table if draw < upto), table[-1][0])


def _label(feature: str, output_id: str, ok: bool) -> dict[str, Any]:
    label: dict[str, Any] = {
        "output_id": output_id,
        "feature": feature,
        "verdict": "pass" if ok else "fail",
        "source": "human:reviewer",
    }
    if not ok:
        label["reason"] = "wrong or unhelpful answer"
    return label


@dataclass(frozen=True)
class _WeekDraws:
    """One week's random draws, made in a fixed order so that a seed gives the same history."""

    week_start: datetime
    tags: dict[str, np.ndarray]
    ok: np.ndarray
    offsets: np.ndarray
    tokens_out: np.ndarray
    tokens_in: np.ndarray
    confidence: np.ndarray
    latency: np.ndarray
    action_draw: np.ndarray
    labelled: np.ndarray
    topics: np.ndarray
    tickets: np.ndarray
    config_version: str
    model_version: str

    @classmethod
    def draw(cls, rng: np.random.Generator, spec: HistorySpec, week: int, volume: int) -> _WeekDraws:
        tags = {key: _pick(rng, mix, week, volume) for key, mix in spec.segments.items()}
        rate = np.full(volume, curve_at(spec.pass_rate, week))
        for rule in spec.segment_rules:
            if rule.key in tags:
                rate[tags[rule.key] == rule.value] = curve_at(rule.pass_rate, week)
        ok = rng.random(volume) < rate
        offsets = np.sort(rng.uniform(0, WEEK.total_seconds(), volume))
        stretch = curve_at(spec.length_factor, week)
        tokens_out = np.maximum(5, rng.lognormal(np.log(120 * stretch), 0.4, volume)).astype(int)
        tokens_in = np.maximum(10, rng.lognormal(np.log(300), 0.5, volume)).astype(int)
        confidence = np.where(ok, rng.beta(9, 2, volume), rng.beta(4, 4, volume))
        confidence = np.clip(confidence + curve_at(spec.confidence_shift, week), 0.0, 1.0)
        latency = rng.lognormal(np.log(900), 0.35, volume) * (0.6 + tokens_out / 300)
        return cls(
            week_start=spec.start + week * WEEK,
            tags=tags,
            ok=ok,
            offsets=offsets,
            tokens_out=tokens_out,
            tokens_in=tokens_in,
            confidence=confidence,
            latency=latency,
            action_draw=rng.random(volume),
            labelled=rng.random(volume) < spec.label_fraction,
            topics=rng.integers(0, len(TOPICS), volume),
            tickets=rng.integers(1000, 99999, volume),
            config_version=_version(spec.config_versions, week),
            model_version=_version(spec.model_versions, week),
        )

    def output(self, spec: HistorySpec, output_id: str, i: int) -> dict[str, Any]:
        """The i-th logged output of the week (CONTRACT section 1)."""
        segment = {key: str(values[i]) for key, values in self.tags.items()}
        tokens_in, tokens_out = self.tokens_in[i], self.tokens_out[i]
        draft = Draft(
            topic=TOPICS[self.topics[i]],
            ticket=int(self.tickets[i]),
            ok=bool(self.ok[i]),
            tokens_out=int(tokens_out),
            language=segment.get("language", "en"),
        )
        text_in, text_out = writer_for(spec.feature)(draft)
        return {
            "id": output_id,
            "feature": spec.feature,
            "ts": (self.week_start + timedelta(seconds=float(self.offsets[i]))).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
            "input": text_in,
            "output": text_out,
            "model_version": self.model_version,
            "config_version": self.config_version,
            "segment": segment,
            "signals": {
                "confidence": round(float(self.confidence[i]), 4),
                "latency_ms": round(float(self.latency[i]), 1),
                "tokens_in": int(tokens_in),
                "tokens_out": int(tokens_out),
                "cost_usd": round(float(tokens_in * 2.5e-6 + tokens_out * 1e-5), 6),
            },
            "user_action": _action(bool(self.ok[i]), float(self.action_draw[i])),
        }


def true_rates(spec: HistorySpec) -> list[float]:
    """The true pass rate of each week (the population curve, before sampling noise)."""
    return [curve_at(spec.pass_rate, week) for week in range(spec.weeks)]


def write_history(spec: HistorySpec, folder: Path) -> tuple[Path, Path, int]:
    """Write outputs.jsonl and labels.jsonl into `folder`; returns their paths and the output count."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs_path, labels_path = folder / "outputs.jsonl", folder / "labels.jsonl"
    count = 0
    with open(outputs_path, "w", encoding="utf-8") as outs, open(labels_path, "w", encoding="utf-8") as labs:
        for output, label in simulate(spec):
            count += 1
            outs.write(json.dumps(output, ensure_ascii=False) + "\n")
            if label is not None:
                labs.write(json.dumps(label) + "\n")
    return outputs_path, labels_path, count


LANGUAGES: Mapping[str, Curve] = {"en": 70, "de": 15, "fr": 10, "es": 5}
CHANNELS: Mapping[str, Curve] = {"email": 60, "chat": 40}


def demo_specs(weeks: int = 16, seed: int = 0) -> list[HistorySpec]:
    """The demo's three features: one steady, one sliding slowly, one broken by a prompt change."""
    change = max(2, weeks * 5 // 8)
    return [
        HistorySpec(
            feature="support-reply",
            weeks=weeks,
            volume=600,
            pass_rate=0.93,
            segments={"language": LANGUAGES, "channel": CHANNELS},
            seed=seed + 1,
        ),
        HistorySpec(
            feature="ticket-triage",
            weeks=weeks,
            volume=500,
            pass_rate=[(0, 0.94), (weeks * 0.3, 0.94), (weeks, 0.76)],
            segments={"language": LANGUAGES},
            seed=seed + 2,
        ),
        HistorySpec(
            feature="summarizer",
            weeks=weeks,
            volume=300,
            pass_rate=[(0, 0.92), (change - 0.01, 0.92), (change, 0.70)],
            segments={"channel": CHANNELS},
            config_versions={0: "prompt-v3", change: "prompt-v4"},
            length_factor=[(0, 1.0), (change - 0.01, 1.0), (change, 1.6)],
            seed=seed + 3,
        ),
    ]
