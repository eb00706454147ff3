"""`aiqm brief`: the launch brief from the config, with the store's mode and baseline when it has them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from monitor.config import FeatureSettings, Settings, load_settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import START, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.reporting.brief import collect_brief, format_brief, missing_brief_items
from monitor.store import feature_queries as fq

if TYPE_CHECKING:
    from conftest import CliRunner

CONFIG = """
features:
  support-reply:
    owner: support-ai-team
    decision_owner: head-of-support
    fallback_mode: fallback
    user_role: support agents draft replies with it
    allowed_actions: [draft a reply for an agent to send]
    blocked_actions: [send a reply without an agent]
    review_path: weekly sample on /review by the support leads
    fallback_behaviour: agents write replies from templates
    known_limitations: [Portuguese untested]
    sample_size: 80
  bare: {}
"""


def test_the_brief_prints_every_item(aiqm: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text(CONFIG)
    env = {"AIQM_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"}
    done = aiqm("brief", "--feature", "support-reply", "--config", config, env=env)
    assert done.code == 0, done.err
    for text in (
        "Launch brief: support-reply",
        "Owner:            support-ai-team",
        "Decision owner:   head-of-support",
        "support agents draft replies with it",
        "  - draft a reply for an agent to send",
        "  - send a reply without an agent",
        "weekly sample on /review by the support leads",
        "agents write replies from templates (mode when it fires: fallback)",
        "  - Portuguese untested",
        "Schedule:         0 6 * * 1 (UTC)",
        "Sample size:      80 per cycle",
        "retrain at a drop of 5.0 points, fallback at 15.0 points below the baseline (95% intervals)",
    ):
        assert text in done.out, text
    assert "warning" not in done.out


def test_an_unknown_feature_is_a_usage_error(aiqm: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text(CONFIG)
    env = {"AIQM_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"}
    done = aiqm("brief", "--feature", "nope", "--config", config, env=env)
    assert done.code == 2
    assert "no feature 'nope'" in done.err and "support-reply" in done.err and "Traceback" not in done.err


def test_missing_owner_and_fallback_are_named() -> None:
    settings = Settings(features={"bare": FeatureSettings()})
    assert missing_brief_items(settings, "bare") == ["owner", "fallback_behaviour"]
    text = format_brief(collect_brief(settings, "bare"))
    assert "Owner:            unassigned" in text and "(not set)" in text
    assert "warning: no fallback_behaviour set" in text and "warning: no owner set" in text


def test_an_override_that_has_ended_no_longer_shows_as_the_mode(
    engine: Engine, store_url: str, aiqm: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text(CONFIG)
    outputs, labels, _ = write_history(
        HistorySpec("support-reply", weeks=1, volume=20, pass_rate=0.9), tmp_path
    )
    import_file(engine, str(outputs), OUTPUTS, lambda: START)
    at = START + WEEK + timedelta(hours=6)
    with engine.begin() as conn:
        fq.add_override(
            conn,
            "support-reply",
            "off",
            "maintenance",
            at - timedelta(hours=1),
            until=at + timedelta(hours=1),
        )
    settings = load_settings(config)
    runner = CycleRunner(engine, settings, SimulatedClock(at), [RecordedReviewers.from_file(str(labels))])
    assert runner.run("support-reply", at).mode == "off"  # the cycle stored the override's mode
    # Long after its `until`, with no cycle since: the triggers decide again (none fires).
    done = aiqm(
        "brief", "--feature", "support-reply", "--config", config, env={"AIQM_DATABASE_URL": store_url}
    )
    assert done.code == 0, done.err
    assert "Current mode:     normal (the manual override has ended)" in done.out
    # While it lasted, it was the mode.
    during = collect_brief(settings, "support-reply", engine, at)
    assert during["mode"] == "off (manual override: maintenance)"
