"""The raw-text queries, on both stores: what retention and unsampled text delete, and what
pull mode fills in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from monitor.records import validate_output
from monitor.store import text_queries
from monitor.store.tables import outputs, samples
from monitor.store.writes import insert_outputs

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def fill(engine: Engine) -> None:
    """Outputs a0..a5 of `support`, an hour apart, with text; b0 of `other`; a1 and a3 sampled."""
    records = [
        validate_output(
            {
                "id": f"a{i}",
                "feature": "support",
                "ts": (T0 + timedelta(hours=i)).isoformat(),
                "input": "q",
                "output": "r",
            }
        )
        for i in range(6)
    ]
    records.append(validate_output({"id": "b0", "feature": "other", "ts": T0.isoformat(), "output": "x"}))
    with engine.begin() as conn:
        insert_outputs(conn, records, T0)
        conn.execute(
            insert(samples),
            [
                {
                    "feature": "support",
                    "output_id": oid,
                    "cycle_at": T0,
                    "stratum": "all",
                    "inclusion_prob": 1.0,
                    "drawn_at": T0,
                }
                for oid in ("a1", "a3")
            ],
        )


def with_text(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        query = select(outputs.c.output_id).where(
            outputs.c.input.is_not(None) | outputs.c.output.is_not(None)
        )
        return set(conn.execute(query).scalars())


def test_text_older_than_and_its_deletion(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        old = text_queries.text_older_than(conn, T0 + timedelta(hours=2), limit=10)
        assert len(old) == 3  # a0, a1 and b0
        assert len(text_queries.text_older_than(conn, T0 + timedelta(hours=2), limit=2)) == 2
        text_queries.delete_text(conn, old)
        assert text_queries.text_older_than(conn, T0 + timedelta(hours=2), limit=10) == []
    assert with_text(engine) == {"a2", "a3", "a4", "a5"}


def test_sampled_outputs_are_kept_by_pk(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        sampled = text_queries.sampled_outputs_in_window(conn, "support", T0, T0 + timedelta(hours=4))
        assert [key.ts for key in sampled] == [T0 + timedelta(hours=1), T0 + timedelta(hours=3)]
        keep = [key.pk for key in sampled]
        cleared = text_queries.delete_text_except(conn, "support", T0, T0 + timedelta(hours=4), keep)
    assert cleared == 2  # a0 and a2; a4, a5 are after the window, b0 another feature
    assert with_text(engine) == {"a1", "a3", "a4", "a5", "b0"}


def test_text_is_found_missing_and_filled_in(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        text_queries.delete_text(conn, text_queries.text_older_than(conn, T0 + timedelta(hours=6), limit=10))
        ids = ["a0", "a4", "nope"]
        assert sorted(text_queries.without_text(conn, "support", ids, None)) == ["a0", "a4"]
        assert text_queries.without_text(conn, "support", ids, T0 + timedelta(hours=1)) == ["a4"]
        text_queries.set_text(conn, "support", "a4", "question", {"answer": 1})
        assert text_queries.without_text(conn, "support", ids, None) == ["a0"]
        stored = conn.execute(
            select(outputs.c.input, outputs.c.output).where(outputs.c.output_id == "a4")
        ).one()
    assert (stored.input, stored.output) == ("question", {"answer": 1})
