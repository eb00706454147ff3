"""The rows a week's cost is added up from, and the budget event, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from monitor.records import validate_output
from monitor.store import cost_queries
from monitor.store.cost_queries import WindowOutput
from monitor.store.tables import judge_runs, labels, samples
from monitor.store.writes import insert_outputs

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
START = AT - timedelta(days=7)


def test_week_spending_reads_the_window_the_judge_calls_and_the_reviewers_time(engine: Engine) -> None:
    def output(oid: str, ts: datetime, feature: str = "support") -> object:
        return {
            "id": oid,
            "feature": feature,
            "ts": ts.isoformat(),
            "signals": {"cost_usd": 0.5},
            "user_action": "accepted",
        }

    records = [validate_output(output("in", START + timedelta(hours=1))), validate_output(output("out", AT))]
    records.append(validate_output(output("other", START + timedelta(hours=1), "search")))
    with engine.begin() as conn:
        insert_outputs(conn, records, AT)
        conn.execute(
            insert(samples),
            [
                {
                    "feature": "support",
                    "output_id": "in",
                    "cycle_at": AT,
                    "stratum": "all",
                    "inclusion_prob": 1.0,
                    "drawn_at": AT,
                }
            ],
        )
        conn.execute(
            insert(labels),
            [
                {
                    "feature": "support",
                    "output_id": "in",
                    "source": source,
                    "source_kind": source.split(":")[0],
                    "verdict": "pass",
                    "ts": AT,
                    "received_at": AT,
                    "review_seconds": seconds,
                }
                for source, seconds in (("human:ana", 40.0), ("judge:rules", None))
            ],
        )
        conn.execute(
            insert(judge_runs),
            [
                {
                    "feature": "support",
                    "cycle_at": AT,
                    "judge": "j",
                    "output_id": "in",
                    "cost_usd": c,
                    "at": AT,
                }
                for c in (0.1, 0.2)
            ],
        )
        spent = cost_queries.week_spending(conn, "support", AT, START, AT)
    assert spent.window == [WindowOutput({"cost_usd": 0.5}, "accepted")]
    assert sorted(c or 0.0 for c in spent.judge_costs) == [0.1, 0.2]
    assert spent.review_seconds == [40]


def test_a_budget_event_is_found_once_recorded(engine: Engine) -> None:
    event = {
        "feature": "support",
        "trigger": "budget",
        "scope": "all",
        "from_state": "ok",
        "to_state": "firing",
        "at": AT,
        "cycle_at": AT,
        "owner": "team",
        "reason": "over",
        "evidence": {},
    }
    with engine.begin() as conn:
        assert not cost_queries.has_event(conn, "support", "budget", AT)
        cost_queries.add_event(conn, event)
        assert cost_queries.has_event(conn, "support", "budget", AT)
        assert not cost_queries.has_event(conn, "support", "budget", START)
        assert not cost_queries.has_event(conn, "support", "quality", AT)
