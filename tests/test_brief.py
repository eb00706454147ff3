"""`aiqm brief`: the launch brief from the config, with the store's mode and baseline when it has them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import FeatureSettings, Settings
from monitor.reporting.brief import collect_brief, format_brief, missing_brief_items

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
