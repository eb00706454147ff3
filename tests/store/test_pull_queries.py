"""Pull mode's positions and watermarks, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from monitor.store import pull_queries
from monitor.store.pull_queries import FilePosition, Watermark

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_file_positions_are_saved_moved_and_forgotten(engine: Engine) -> None:
    with engine.begin() as conn:
        assert pull_queries.file_positions(conn, "jsonl:/logs") == {}
        pull_queries.save_file_position(
            conn, "jsonl:/logs", (1, 10), "/logs/a", FilePosition(100, 2), T0, new=True
        )
        pull_queries.save_file_position(
            conn, "jsonl:/logs", (1, 11), "/logs/b", FilePosition(50, 1), T0, new=True
        )
        pull_queries.save_file_position(
            conn, "jsonl:/other", (1, 10), "/o/a", FilePosition(7, 1), T0, new=True
        )
        later = T0 + timedelta(minutes=1)
        pull_queries.save_file_position(
            conn, "jsonl:/logs", (1, 10), "/logs/a.1", FilePosition(180, 4), later, new=False
        )
        assert pull_queries.file_positions(conn, "jsonl:/logs") == {
            (1, 10): FilePosition(180, 4),
            (1, 11): FilePosition(50, 1),
        }
        pull_queries.forget_files(conn, "jsonl:/logs", [(1, 11)])
        assert pull_queries.file_positions(conn, "jsonl:/logs") == {(1, 10): FilePosition(180, 4)}
        assert pull_queries.file_positions(conn, "jsonl:/other") == {(1, 10): FilePosition(7, 1)}


def test_a_watermark_is_saved_then_moved(engine: Engine) -> None:
    with engine.begin() as conn:
        assert pull_queries.watermark(conn, "sql:x/t") is None
        pull_queries.save_watermark(conn, "sql:x/t", Watermark('{"value": 3}', "3"), T0, new=True)
        assert pull_queries.watermark(conn, "sql:x/t") == Watermark('{"value": 3}', "3")
        pull_queries.save_watermark(conn, "sql:x/t", Watermark('{"value": 9}', "9"), T0, new=False)
        assert pull_queries.watermark(conn, "sql:x/t") == Watermark('{"value": 9}', "9")
        assert pull_queries.watermark(conn, "sql:x/u") is None
