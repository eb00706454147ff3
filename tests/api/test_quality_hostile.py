"""The quality page with hostile text (HTML and SQL) wherever stored data or the config reach it:
segment values, an override's reason, a trigger event's scope and reason, the owner. Every value
is shown escaped, never as markup, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from markupsafe import escape
from quality_data import NOW, TestClient, services_for, settings
from review_data import SCRIPT, SQL, mint_tokens
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.config import FeatureSettings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.records import validate_output
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.writes import insert_outputs

HOSTILE = "hostile"
IMG = '"><img src=x onerror=alert(3)>'
CYCLE_AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def hostile_outputs() -> list[dict[str, object]]:
    return [
        {
            "id": f"{SCRIPT}-{i}",
            "feature": HOSTILE,
            "ts": (CYCLE_AT - timedelta(days=3, minutes=i)).isoformat().replace("+00:00", "Z"),
            "input": SCRIPT,
            "output": IMG,
            "segment": {"language": SCRIPT if i % 2 else SQL, "channel": IMG},
            "signals": {"confidence": 0.5, IMG: 1.0},
            "user_action": "accepted",
        }
        for i in range(24)
    ]


def test_hostile_values_are_escaped_on_the_quality_page(engine: Engine, tmp_path: Path) -> None:
    base = settings()
    config = base.model_copy(
        update={"features": {**base.features, HOSTILE: FeatureSettings(owner=f"{IMG}{SQL}")}}
    )
    clock = SimulatedClock(CYCLE_AT)
    records = [validate_output(o) for o in hostile_outputs()]
    with engine.begin() as conn:
        insert_outputs(conn, records, clock())
    verdicts = {
        (HOSTILE, r.id): ("fail" if i % 3 else "pass", "human:rita", SCRIPT) for i, r in enumerate(records)
    }
    CycleRunner(engine, config, clock, labellers=[RecordedReviewers(verdicts)]).run(HOSTILE, CYCLE_AT)
    with engine.begin() as conn:
        fq.add_override(conn, HOSTILE, "off", f"{SCRIPT}{IMG}", CYCLE_AT + timedelta(hours=1))
        q.add_trigger_events(
            conn,
            [
                {
                    "feature": HOSTILE,
                    "trigger": "drift",
                    "scope": f"segment:language={SCRIPT}",
                    "from_state": "ok",
                    "to_state": "firing",
                    "at": CYCLE_AT,
                    "cycle_at": CYCLE_AT,
                    "owner": IMG,
                    "reason": f"{SQL}{SCRIPT}",
                    "evidence": {},
                }
            ],
        )
    token = mint_tokens(engine, NOW).admin
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(services_for(engine, config)), base_url="http://testserver") as client:
        overview = client.get("/quality", headers=headers)
        page = client.get(f"/quality/{HOSTILE}", headers=headers)
    assert overview.status_code == 200 and page.status_code == 200
    assert 'id="segments"' in page.text and 'id="timeline"' in page.text and "mode-off" in page.text
    for text in (overview.text, page.text):
        assert SCRIPT not in text and "alert(1)</script>" not in text
        assert "<img src=x" not in text and IMG not in text
        assert SQL not in text  # the quote is escaped as &#39;
        assert "<script" not in text  # the quality page runs no script at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # shown, as text
    assert str(escape(IMG)) in overview.text  # the owner
    assert str(escape(f"manual override: {SCRIPT}{IMG}")) in page.text  # the mode's reason
    assert str(escape(f"segment:language={SCRIPT}")) in page.text  # the timeline's scope
