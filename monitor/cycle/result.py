"""What a cycle found, typed: `CycleResult` is written to `cycles.result` and read back from it.

The JSON keeps the shape it has always had, so every stored row reads back, those of older
versions included: keys a version did not write yet (`actions`, `cost`, `action_model_version`)
read back as absent and are written back absent. A cycle that has drawn its sample and not yet
measured it stores only its sample size (`CycleResult.drawn`).

`CycleOutcome` is what a run returns (and `aiqm backtest --json` prints, per cycle): the cycle's
row, with its result typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.decide.judge_agreement import JudgePairs
from monitor.decide.quality import ScopeQuality
from monitor.decide.triggers import CycleFacts
from monitor.stats.drift_result import DriftResult


@dataclass(frozen=True)
class Alert:
    """A trigger pending or firing after the cycle."""

    trigger: str
    scope: str
    state: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"trigger": self.trigger, "scope": self.scope, "state": self.state, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        return cls(data["trigger"], data["scope"], data["state"], data["reason"])


@dataclass(frozen=True)
class WindowCost:
    """What the window's outputs cost (their `signals.cost_usd`), and how many reported a cost."""

    cost_usd: float
    outputs_with_cost: int

    def to_json(self) -> dict[str, float | int]:
        return {"cost_usd": self.cost_usd, "outputs_with_cost": self.outputs_with_cost}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowCost:
        return cls(float(data.get("cost_usd", 0.0)), int(data.get("outputs_with_cost", 0)))


@dataclass(frozen=True)
class JudgeAgreement:
    """A judge's verdicts paired with the humans' on the cycle's sample, and Cohen's kappa from
    them as computed then (None where undefined)."""

    pairs: JudgePairs
    kappa: float | None
    low: float | None
    high: float | None
    agreement: float | None

    @property
    def n(self) -> int:
        return self.pairs.n

    @classmethod
    def of(cls, pairs: JudgePairs, confidence: float) -> JudgeAgreement:
        summary = pairs.summary(confidence)
        return cls(pairs, summary["kappa"], summary["low"], summary["high"], summary["agreement"])

    def to_json(self) -> dict[str, Any]:
        pairs = self.pairs
        return {
            "kappa": self.kappa,
            "low": self.low,
            "high": self.high,
            "agreement": self.agreement,
            "n": self.n,
            "judged": pairs.judged,
            "pairs": [[pairs.pass_pass, pairs.pass_fail], [pairs.fail_pass, pairs.fail_fail]],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JudgeAgreement:
        return cls(
            JudgePairs.from_json(data),
            data.get("kappa"),
            data.get("low"),
            data.get("high"),
            data.get("agreement"),
        )


@dataclass(frozen=True)
class DriftEntry:
    """One signal's primary drift test, as stored: numbers that could not be computed are None."""

    signal: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    effect: float | None
    drifted: bool
    effect_name: str
    p_value_adjusted: float | None
    n_reference: int
    n_current: int
    new_categories: tuple[str, ...]
    primary: bool

    @classmethod
    def of(cls, result: DriftResult) -> DriftEntry:
        return cls.from_json(result.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "effect": self.effect,
            "drifted": self.drifted,
            "effect_name": self.effect_name,
            "p_value_adjusted": self.p_value_adjusted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "new_categories": list(self.new_categories),
            "primary": self.primary,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftEntry:
        return cls(
            signal=str(data["signal"]),
            kind=str(data.get("kind", "")),
            test=str(data.get("test", "")),
            statistic=data.get("statistic"),
            p_value=data.get("p_value"),
            effect=data.get("effect"),
            drifted=bool(data.get("drifted", False)),
            effect_name=str(data.get("effect_name", "")),
            p_value_adjusted=data.get("p_value_adjusted"),
            n_reference=int(data.get("n_reference", 0)),
            n_current=int(data.get("n_current", 0)),
            new_categories=tuple(data.get("new_categories", ())),
            primary=bool(data.get("primary", True)),
        )


@dataclass(frozen=True)
class DriftCheck:
    """The window's outputs tested against the baseline's (only a cycle with a baseline has one)."""

    baseline_version: int
    entries: tuple[DriftEntry, ...]
    drifted: tuple[str, ...]
    """The signals whose primary test says drifted, in report order."""


@dataclass(frozen=True)
class CycleResult:
    """A cycle's stored results: quality per scope, what arrived, the window, judges, drift, alerts."""

    sample_size: int | None
    quality: Mapping[str, ScopeQuality] = field(default_factory=dict)
    """`all` and `segment:<key>=<value>`, each scope that had labels."""
    human_labels_received: int = 0
    labels_received: int = 0
    actions: Mapping[str, Mapping[str, int]] | None = None
    """Per scope, how many outputs of the window met each user action (None: not recorded)."""
    cost: WindowCost | None = None
    """None: not recorded (a cycle stored before costs were)."""
    action_model_version: int | None = None
    """The baseline whose action model weighed the labels (None: none did)."""
    action_model_recorded: bool = True
    """False for a cycle stored before the version was: the active baseline's model applies."""
    judges: Mapping[str, JudgeAgreement] = field(default_factory=dict)
    drift: DriftCheck | None = None
    alerts: tuple[Alert, ...] = ()
    next_sample_size: int | None = None
    measured: bool = True
    """False for a cycle that drew its sample and measured nothing yet: its JSON is the sample size alone."""

    @classmethod
    def drawn(cls, sample_size: int) -> CycleResult:
        """The result of a cycle that has just drawn its sample."""
        return cls(sample_size=sample_size, action_model_recorded=False, measured=False)

    @property
    def overall(self) -> ScopeQuality | None:
        return self.quality.get("all")

    @property
    def drift_entries(self) -> tuple[DriftEntry, ...]:
        return self.drift.entries if self.drift is not None else ()

    def to_json(self) -> dict[str, Any]:
        """The stored shape: key for key (and in the order) the cycle has always written."""
        out: dict[str, Any] = {} if self.sample_size is None else {"sample_size": self.sample_size}
        if not self.measured:
            return out
        out["quality"] = {scope: value.to_json() for scope, value in self.quality.items()}
        out["human_labels_received"] = self.human_labels_received
        out["labels_received"] = self.labels_received
        if self.actions is not None:
            out["actions"] = {scope: dict(counts) for scope, counts in self.actions.items()}
        if self.cost is not None:
            out["cost"] = self.cost.to_json()
        if self.action_model_recorded:
            out["action_model_version"] = self.action_model_version
        if self.judges:
            out["judges"] = {name: agreement.to_json() for name, agreement in self.judges.items()}
        if self.drift is not None:
            out["drift"] = [entry.to_json() for entry in self.drift.entries]
            out["drifted"] = list(self.drift.drifted)
            out["baseline_version"] = self.drift.baseline_version
        out["alerts"] = [alert.to_json() for alert in self.alerts]
        out["next_sample_size"] = self.next_sample_size
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> CycleResult:
        """Read a stored result, of any version (without `quality`: a cycle not measured yet)."""
        data = data or {}
        size = data.get("sample_size")
        sample_size = None if size is None else int(size)
        if "quality" not in data:
            return cls(sample_size=sample_size, action_model_recorded=False, measured=False)
        version = data.get("action_model_version")
        return cls(
            sample_size=sample_size,
            quality={scope: ScopeQuality.from_json(scope, value) for scope, value in data["quality"].items()},
            human_labels_received=int(data.get("human_labels_received", 0)),
            labels_received=int(data.get("labels_received", 0)),
            actions=data.get("actions"),
            cost=WindowCost.from_json(data["cost"]) if "cost" in data else None,
            action_model_version=None if version is None else int(version),
            action_model_recorded="action_model_version" in data,
            judges={name: JudgeAgreement.from_json(value) for name, value in data.get("judges", {}).items()},
            drift=_drift_from_json(data),
            alerts=tuple(Alert.from_json(alert) for alert in data.get("alerts", ())),
            next_sample_size=data.get("next_sample_size"),
        )


def _drift_from_json(data: Mapping[str, Any]) -> DriftCheck | None:
    if "drift" not in data:
        return None
    return DriftCheck(
        baseline_version=int(data["baseline_version"]),
        entries=tuple(DriftEntry.from_json(entry) for entry in data["drift"]),
        drifted=tuple(data.get("drifted", ())),
    )


def format_cycle_time(moment: datetime) -> str:
    """A cycle's time as `aiqm backtest --json` and `aiqm cycle` have always printed it: to the
    second, as given (`monitor.formats.format_ts` would add microseconds and convert)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CycleOutcome:
    """A cycle's row: its window, counts, overall pass rate, mode and typed result."""

    feature: str
    at: datetime
    window_start: datetime
    window_end: datetime
    outputs: int
    sampled: int
    labelled: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    mode: str
    result: CycleResult

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return self.result.alerts

    def to_json(self) -> dict[str, Any]:
        """One cycle of `aiqm backtest --json` (CONTRACT section 5), and a line of `aiqm cycle`."""
        return {
            "at": format_cycle_time(self.at),
            "window_start": format_cycle_time(self.window_start),
            "window_end": format_cycle_time(self.window_end),
            "outputs": self.outputs,
            "sampled": self.sampled,
            "labelled": self.labelled,
            "pass_rate": self.pass_rate,
            "pass_rate_low": self.pass_rate_low,
            "pass_rate_high": self.pass_rate_high,
            "mode": self.mode,
            "alerts": [alert.to_json() for alert in self.alerts],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CycleOutcome:
        """From a row of `cycles`."""
        return cls(
            feature=row["feature"],
            at=row["at"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            outputs=int(row["outputs"]),
            sampled=int(row["sampled"]),
            labelled=int(row["labelled"]),
            pass_rate=row["pass_rate"],
            pass_rate_low=row["pass_rate_low"],
            pass_rate_high=row["pass_rate_high"],
            mode=row["mode"],
            result=CycleResult.from_json(row["result"]),
        )


@dataclass(frozen=True)
class DoneCycle:
    """A finished cycle as later cycles read it: its window, volume and result."""

    at: datetime
    window_start: datetime
    window_end: datetime
    finished_at: datetime
    outputs: int
    result: CycleResult

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DoneCycle:
        return cls(
            at=row["at"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            finished_at=row["finished_at"],
            outputs=int(row["outputs"]),
            result=CycleResult.from_json(row["result"]),
        )

    @classmethod
    def all_of(cls, rows: Sequence[Mapping[str, Any]]) -> list[DoneCycle]:
        return [cls.from_row(row) for row in rows]

    def facts(self) -> CycleFacts:
        """What the trigger rules need to know of this cycle."""
        result = self.result
        return CycleFacts(
            at=self.at,
            outputs=self.outputs,
            human_labels_received=result.human_labels_received,
            labels_received=result.labels_received,
            quality=result.quality,
            drifted=result.drift.drifted if result.drift is not None else (),
            drift_checked=result.drift is not None,
            judges={name: agreement.pairs for name, agreement in result.judges.items()},
        )
