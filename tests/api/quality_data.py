"""What the quality page's tests share: a store holding a short history replayed through the real
cycle (a drop that fires triggers, a rule judge, reviewers who label part of the last sample),
the daemon's services, and a signed-in client."""

from __future__ import annotations

import html
import re
import secrets
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from monitor.config import FeatureSettings, Settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock, cycle_times
from monitor.cycle.runner import CycleRunner
from monitor.daemon.services import Services
from monitor.daemon.tokens import TokenBook
from monitor.demo.simulate import HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.judges.runner import JudgeLabeller
from monitor.store import cycle_queries as q

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

FEATURE = "ticket-triage"
QUIET = "summarizer"  # configured, nothing logged
START = datetime(2026, 1, 5, tzinfo=UTC)
WEEKS = 8
NOW = START + WEEKS * timedelta(days=7) + timedelta(hours=8)


def settings() -> Settings:
    return Settings(
        features={
            FEATURE: FeatureSettings.model_validate(
                {
                    "owner": "ops-ml@example.com",
                    "sample_size": 60,
                    "judges": [{"kind": "length", "name": "short", "min_chars": 1, "max_chars": 900}],
                }
            ),
            QUIET: FeatureSettings(owner="bo@example.com"),
        }
    )


class LastWeekPartly:
    """Reviewers who label every drawn output they know, except half of the last cycle's."""

    def __init__(self, reviewers: RecordedReviewers, last: datetime) -> None:
        self.reviewers = reviewers
        self.last = last

    def label(self, feature: str, output_ids: list[str], at: datetime) -> list[object]:
        chosen = output_ids[: len(output_ids) // 2] if at == self.last else output_ids
        return list(self.reviewers.label(feature, chosen, at))


def seed_history(engine: Engine, folder: Path) -> Settings:
    """Eight weeks of a feature whose true pass rate falls from 94% to 70% after week four."""
    config = settings()
    spec = HistorySpec(
        feature=FEATURE,
        weeks=WEEKS,
        volume=160,
        pass_rate=[(0, 0.94), (3.5, 0.94), (4, 0.70)],
        segments={"language": {"en": 70, "de": 30}},
        seed=11,
        start=START,
    )
    outputs, labels, _ = write_history(spec, folder)
    clock = SimulatedClock(NOW)
    import_file(engine, str(outputs), OUTPUTS, clock)
    with engine.connect() as conn:
        row = q.feature_row(conn, FEATURE)
    assert row is not None
    feature = config.feature(FEATURE)
    times = cycle_times(feature.schedule, feature.window_days, row["first_output_ts"], row["last_output_ts"])
    times = [at for at in times if at <= NOW]
    reviewers = LastWeekPartly(RecordedReviewers.from_file(str(labels)), times[-1])
    runner = CycleRunner(engine, config, clock, labellers=[JudgeLabeller(engine, config, clock), reviewers])  # type: ignore[list-item]
    for at in times:
        clock.now = at
        runner.run(FEATURE, at)
    return config


def services_for(engine: Engine, config: Settings) -> Services:
    clock = lambda: NOW  # noqa: E731
    return Services(
        engine=engine,
        settings=config,
        runner=CycleRunner(engine, config, clock),
        clock=clock,
        tokens=TokenBook(config, engine),
        session_secret=secrets.token_bytes(32),
    )


def hidden(text: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', text)
    assert found is not None, f"no hidden field {name!r}"
    return html.unescape(found.group(1))


def sign_in(client: TestClient, token: str, next_url: str = "") -> int:
    """Sign in on /quality/login; the status of the submit (303 when it worked)."""
    form = client.get("/quality/login")
    answer = client.post(
        "/quality/login",
        data={"token": token, "csrf": hidden(form.text, "csrf"), "next": next_url},
        follow_redirects=False,
    )
    return answer.status_code
