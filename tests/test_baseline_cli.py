"""`aiqm baseline set / accept / list` on both stores: versioned baselines whose numbers come
from the labelled review samples, a history that keeps every version, and proposals that are
adopted only by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, and_, select

from monitor.config import FeatureSettings, Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import START, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.reporting.status import collect_status
from monitor.store import cycle_queries as q
from monitor.store.tables import labels, outputs, samples

if TYPE_CHECKING:
    from conftest import CliRunner

FEATURE = "drafts"
SPEC = HistorySpec(
    FEATURE,
    weeks=7,
    volume=100,
    pass_rate=0.9,
    segments={"language": {"en": 3, "de": 1}},
    config_versions={0: "prompt-v1", 5: "prompt-v2"},
)
SETTINGS = Settings(features={FEATURE: FeatureSettings(owner="drafts-team")})


def cycle_time(week: int) -> datetime:
    return START + (week + 1) * WEEK + timedelta(hours=6)


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class History:
    def __init__(self, engine: Engine, folder: Path) -> None:
        outputs_path, labels_path, _ = write_history(SPEC, folder)
        import_file(engine, str(outputs_path), OUTPUTS, lambda: START)
        self.engine = engine
        self.clock = SimulatedClock(cycle_time(0))
        self.runner = CycleRunner(
            engine, SETTINGS, self.clock, [RecordedReviewers.from_file(str(labels_path))]
        )

    def run(self, weeks: range) -> None:
        for week in weeks:
            self.clock.now = cycle_time(week)
            self.runner.run(FEATURE, cycle_time(week))

    def baselines(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return q.baseline_history(conn, FEATURE)

    def weighted_pass_rate(self, start: datetime, end: datetime) -> tuple[float, int]:
        """Independently of the code under test: the Hajek estimate over the human-labelled
        sampled outputs whose ts is in [start, end), and how many there are."""
        query = (
            select(labels.c.verdict, samples.c.inclusion_prob)
            .join(
                outputs,
                and_(outputs.c.feature == labels.c.feature, outputs.c.output_id == labels.c.output_id),
            )
            .join(
                samples,
                and_(samples.c.feature == labels.c.feature, samples.c.output_id == labels.c.output_id),
            )
            .where(labels.c.feature == FEATURE, labels.c.source_kind == "human")
            .where(outputs.c.ts >= start, outputs.c.ts < end)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        weights = [1 / p for _, p in rows]
        passed = sum(w for (verdict, _), w in zip(rows, weights, strict=True) if verdict == "pass")
        return passed / sum(weights), len(rows)


@pytest.fixture
def history(engine: Engine, tmp_path: Path) -> History:
    return History(engine, tmp_path / "history")


@pytest.fixture
def env(store_url: str) -> dict[str, str]:
    return {"AIQM_DATABASE_URL": store_url}


def test_set_pins_a_new_version_from_the_labelled_samples_of_the_range(
    history: History, env: dict[str, str], aiqm: CliRunner
) -> None:
    history.run(range(6))
    start, end = START + 1 * WEEK, START + 4 * WEEK
    done = aiqm(
        "baseline",
        "set",
        "--feature",
        FEATURE,
        "--from",
        ts(start),
        "--to",
        ts(end),
        "--reason",
        "after the fix",
        env=env,
    )
    assert done.code == 0, done.err
    versions = history.baselines()
    assert [(b["version"], b["kind"], b["status"]) for b in versions] == [
        (1, "auto", "superseded"),
        (2, "proposed", "dismissed"),  # proposed after prompt-v2 went live; a person has now decided
        (3, "manual", "active"),
    ]
    pinned = versions[-1]
    assert "v3" in done.out and "manual" in done.out
    assert pinned["window_start"] == start and pinned["window_end"] == end
    assert pinned["reason"] == "after the fix"
    expected, labelled = history.weighted_pass_rate(start, end)
    assert labelled > 50
    assert pinned["labelled"] == labelled
    assert pinned["pass_rate"] == pytest.approx(expected)
    assert pinned["pass_rate_low"] < pinned["pass_rate"] < pinned["pass_rate_high"]
    assert set(pinned["segments"]["scopes"]) == {"segment:language=en", "segment:language=de"}
    # The next cycle judges against it, and proposes again: the pinned window ran prompt-v1.
    history.run(range(6, 7))
    with history.engine.connect() as conn:
        last = q.cycle_row(conn, FEATURE, cycle_time(6))
    assert last is not None and last["result"]["baseline_version"] == 3
    assert [(b["version"], b["status"]) for b in history.baselines()][-1] == (4, "proposed")


def test_list_then_accept_the_newest_proposal_with_numbers_from_its_window(
    history: History, env: dict[str, str], aiqm: CliRunner
) -> None:
    empty = aiqm("baseline", "list", "--feature", FEATURE, env=env)
    assert empty.code == 0 and "no baseline yet" in empty.out
    history.run(range(7))
    text = aiqm("baseline", "list", "--feature", FEATURE, env=env)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert len(lines) == 2
    assert "v1" in lines[0] and "active" in lines[0] and "auto" in lines[0]
    assert "v2" in lines[1] and "proposed" in lines[1] and "prompt-v1 -> prompt-v2" in lines[1]
    data = json.loads(aiqm("baseline", "list", "--feature", FEATURE, "--json", env=env).out)
    assert data["feature"] == FEATURE
    assert [(b["version"], b["status"]) for b in data["baselines"]] == [(1, "active"), (2, "proposed")]
    assert data["baselines"][0]["labelled"] > 0 and data["baselines"][1]["pass_rate"] is None
    proposals = collect_status(history.engine, SETTINGS, cycle_time(6))["features"][FEATURE]["proposals"]
    assert len(proposals) == 1  # proposed once, not again every cycle
    proposal = proposals[0]
    assert proposal["window_end"] == cycle_time(5).isoformat()  # the first cycle that saw prompt-v2
    done = aiqm("baseline", "accept", "--feature", FEATURE, env=env)
    assert done.code == 0, done.err
    versions = history.baselines()
    assert [(b["version"], b["kind"], b["status"]) for b in versions] == [
        (1, "auto", "superseded"),
        (2, "proposed", "accepted"),
        (3, "accepted", "active"),
    ]
    accepted = versions[-1]
    assert (accepted["window_start"], accepted["window_end"]) == (
        versions[1]["window_start"],
        versions[1]["window_end"],
    )
    expected, labelled = history.weighted_pass_rate(accepted["window_start"], accepted["window_end"])
    assert accepted["pass_rate"] == pytest.approx(expected) and accepted["labelled"] == labelled
    assert "accepted proposal v2" in accepted["reason"]
    status = collect_status(history.engine, SETTINGS, cycle_time(6))["features"][FEATURE]
    assert status["proposals"] == [] and status["baseline"]["version"] == 3
    again = aiqm("baseline", "accept", "--feature", FEATURE, env=env)
    assert again.code == 2 and "no open baseline proposal" in again.err and "Traceback" not in again.err


REFUSED = [
    (["--feature", "nope", "--from", "2026-01-05T00:00:00Z", "--to", "2026-01-12T00:00:00Z"], "no feature"),
    (["--feature", FEATURE, "--from", "2025-01-01T00:00:00Z", "--to", "2025-02-01T00:00:00Z"], "no human"),
    (["--feature", FEATURE, "--from", "2026-01-12T00:00:00Z", "--to", "2026-01-05T00:00:00Z"], "--from"),
    (["--feature", FEATURE, "--from", "last week", "--to", "2026-01-12T00:00:00Z"], "--from"),
    (["--feature", FEATURE, "--from", "2026-01-05T00:00:00Z", "--to", "2999-01-01T00:00:00Z"], "future"),
]


def test_set_refuses_what_it_cannot_pin(history: History, env: dict[str, str], aiqm: CliRunner) -> None:
    history.run(range(1))
    before = history.baselines()
    for args, message in REFUSED:
        done = aiqm("baseline", "set", *args, env=env)
        assert done.code == 2, args
        assert message in done.err and "Traceback" not in done.err, (args, done.err)
    assert history.baselines() == before
    # The same week is fine: its samples are labelled.
    ok = aiqm(
        "baseline",
        "set",
        "--feature",
        FEATURE,
        "--from",
        "2026-01-05T00:00:00Z",
        "--to",
        "2026-01-12T06:00:00Z",
        env=env,
    )
    assert ok.code == 0, ok.err


def test_baseline_needs_a_subcommand_and_a_feature(env: dict[str, str], aiqm: CliRunner) -> None:
    assert aiqm("baseline", env=env).code == 2
    assert aiqm("baseline", "set", "--from", "2026-01-12T00:00:00Z", env=env).code == 2
    assert aiqm("baseline", "accept", "--feature", "nope", env=env).code == 2
