"""The store's contract, run on SQLite and on PostgreSQL: both must behave alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from monitor.errors import InputError
from monitor.records import LabelRecord, OutputRecord, validate_label, validate_output
from monitor.store.reads import feature_counts
from monitor.store.tables import features, labels, outputs
from monitor.store.writes import WriteCounts, insert_labels, insert_outputs

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def out(record_id: str, minutes: float = 0, feature: str = "support", **fields: Any) -> OutputRecord:
    ts = (T0 + timedelta(minutes=minutes)).isoformat()
    return validate_output({"id": record_id, "feature": feature, "ts": ts, **fields})


def lab(output_id: str, verdict: str = "pass", source: str = "human:ana", **fields: Any) -> LabelRecord:
    return validate_label(
        {"output_id": output_id, "feature": "support", "verdict": verdict, "source": source, **fields}
    )


def store_outputs(engine: Engine, records: list[OutputRecord], now: datetime) -> WriteCounts:
    with engine.begin() as conn:
        return insert_outputs(conn, records, now)


def store_labels(engine: Engine, records: list[LabelRecord], now: datetime) -> WriteCounts:
    with engine.begin() as conn:
        return insert_labels(conn, records, now)


def stored_ids(engine: Engine, feature: str = "support") -> list[str]:
    with engine.connect() as conn:
        query = select(outputs.c.output_id).where(outputs.c.feature == feature).order_by(outputs.c.output_id)
        return list(conn.scalars(query))


# --------------------------------------------------------------------------- outputs


def test_outputs_are_stored_once_and_counted_exactly(engine: Engine, clock: datetime) -> None:
    first = [out("a", 1), out("b", 2), out("c", 3)]
    assert store_outputs(engine, first, clock) == WriteCounts(stored=3)
    again = [out("b", 2), out("d", 4), out("a", 1)]
    assert store_outputs(engine, again, clock) == WriteCounts(stored=1, duplicates=2)
    assert stored_ids(engine) == ["a", "b", "c", "d"]


def test_a_stored_id_in_the_middle_of_a_new_batch_is_a_duplicate(engine: Engine, clock: datetime) -> None:
    # The first and last of the batch are new: PostgreSQL tries its direct COPY, meets the
    # stored id, and must fall back without losing the batch or the transaction.
    store_outputs(engine, [out("m", 50, output="original")], clock)
    with engine.begin() as conn:
        counts = insert_outputs(conn, [out("a", 1), out("m", 99, output="resent"), out("z", 2)], clock)
        assert counts == WriteCounts(stored=2, duplicates=1)
        assert insert_outputs(conn, [out("y", 3)], clock) == WriteCounts(stored=1)
    assert stored_ids(engine) == ["a", "m", "y", "z"]
    with engine.connect() as conn:
        assert conn.scalar(select(outputs.c.output).where(outputs.c.output_id == "m")) == "original"
        assert feature_counts(conn)[0].outputs == 4


def test_duplicates_within_one_batch_keep_the_first(engine: Engine, clock: datetime) -> None:
    batch = [out("a", 1, output="first"), out("b", 2), out("a", 9, output="second"), out("a", 7)]
    assert store_outputs(engine, batch, clock) == WriteCounts(stored=2, duplicates=2)
    with engine.connect() as conn:
        row = conn.execute(select(outputs.c.ts, outputs.c.output).where(outputs.c.output_id == "a")).one()
    assert (row.ts, row.output) == (T0 + timedelta(minutes=1), "first")


def test_the_same_id_in_two_features_is_two_outputs(engine: Engine, clock: datetime) -> None:
    batch = [out("a", 1, feature="support"), out("a", 2, feature="triage"), out("b", 3, feature="triage")]
    assert store_outputs(engine, batch, clock) == WriteCounts(stored=3)
    assert stored_ids(engine, "support") == ["a"]
    assert stored_ids(engine, "triage") == ["a", "b"]


def test_an_empty_batch_writes_nothing(engine: Engine, clock: datetime) -> None:
    assert store_outputs(engine, [], clock) == WriteCounts()
    with engine.connect() as conn:
        assert feature_counts(conn) == []


def test_feature_counters_follow_what_was_stored(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a", 30), out("b", 10)], clock)
    later = clock + timedelta(hours=1)
    # b is a duplicate (its different time must not move the counters), c moves first_output_ts back.
    store_outputs(engine, [out("b", -500), out("c", 5), out("x", 1, feature="other")], later)
    with engine.connect() as conn:
        counts = {item.name: item for item in feature_counts(conn)}
        row = conn.execute(select(features).where(features.c.name == "support")).mappings().one()
    support = counts["support"]
    assert support.outputs == 3
    assert support.first_output_ts == T0 + timedelta(minutes=5)
    assert support.last_output_ts == T0 + timedelta(minutes=30)
    assert support.mode == "normal"
    assert row["last_ingest_at"] == later
    assert counts["other"].outputs == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(outputs)) == 4


def test_timestamps_round_trip_as_aware_utc(engine: Engine, clock: datetime) -> None:
    plus_two = timezone(timedelta(hours=2))
    records = [
        validate_output({"id": "tz", "feature": "support", "ts": "2026-03-02T08:00:00.123456+02:00"}),
        validate_output({"id": "z", "feature": "support", "ts": "2026-03-02T06:00:00Z"}),
        validate_output({"id": "old", "feature": "support", "ts": "1999-12-31T23:59:59.999999-05:00"}),
    ]
    store_outputs(engine, records, clock.astimezone(plus_two))
    with engine.connect() as conn:
        rows = {
            r.output_id: r
            for r in conn.execute(select(outputs.c.output_id, outputs.c.ts, outputs.c.ingested_at))
        }
    assert rows["tz"].ts == datetime(2026, 3, 2, 6, 0, 0, 123456, tzinfo=UTC)
    assert rows["old"].ts == datetime(2000, 1, 1, 4, 59, 59, 999999, tzinfo=UTC)
    for row in rows.values():
        assert row.ts.utcoffset() == timedelta(0)
        assert row.ingested_at == clock and row.ingested_at.utcoffset() == timedelta(0)


def test_time_range_queries_see_what_the_fast_path_wrote(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out(f"o{i}", minutes=i * 10) for i in range(10)], clock)
    start, end = T0 + timedelta(minutes=20), T0 + timedelta(minutes=50)
    with engine.connect() as conn:
        found = conn.scalars(
            select(outputs.c.output_id)
            .where(outputs.c.feature == "support", outputs.c.ts >= start, outputs.c.ts < end)
            .order_by(outputs.c.ts)
        ).all()
    assert found == ["o2", "o3", "o4"]


def test_json_fields_round_trip(engine: Engine, clock: datetime) -> None:
    full = out(
        "full",
        input={"question": "Où est mon colis ?", "history": [1, 2.5, None, True]},
        output="Ihr Paket ist unterwegs — morgen 🚚",
        model_version="model-2026-01",
        config_version="prompt-v3",
        segment={"language": "fr", "channel": "e-mail"},
        signals={"confidence": 0.875, "tokens_out": 42, "cost_usd": 1.5e-05},
        user_action="edited",
        metadata={"trace": {"span": "abc", "ids": [2**70, -1]}, "quote": 'a "b" \\ c\n\t'},
    )
    bare = out("bare")
    store_outputs(engine, [full, bare], clock)
    with engine.connect() as conn:
        rows = {row.output_id: row for row in conn.execute(select(outputs))}
    got = rows["full"]
    assert got.input == full.input
    assert got.output == full.output
    assert got.segment == full.segment
    assert got.signals == {"confidence": 0.875, "tokens_out": 42.0, "cost_usd": 1.5e-05}
    assert got.metadata == full.metadata
    assert (got.model_version, got.config_version, got.user_action) == (
        "model-2026-01",
        "prompt-v3",
        "edited",
    )
    assert got.input_length == full.input_length and got.output_length == len(full.output)
    empty = rows["bare"]
    assert (empty.input, empty.output, empty.segment, empty.signals, empty.metadata) == (None,) * 5
    assert (empty.input_length, empty.output_length, empty.user_action) == (None, None, None)


def test_json_columns_can_be_queried_in_sql(engine: Engine, clock: datetime) -> None:
    store_outputs(
        engine,
        [out("de", segment={"language": "de"}), out("en", segment={"language": "en"}), out("none")],
        clock,
    )
    with engine.connect() as conn:
        found = conn.scalars(
            select(outputs.c.output_id).where(outputs.c.segment["language"].as_string() == "de")
        ).all()
    assert found == ["de"]


def test_a_string_input_is_stored_as_a_json_string(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("s", input='{"looks": "like json"}')], clock)
    with engine.connect() as conn:
        assert conn.scalar(select(outputs.c.input)) == '{"looks": "like json"}'


# --------------------------------------------------------------------------- labels


def label_rows(engine: Engine) -> dict[tuple[str, str], Any]:
    with engine.connect() as conn:
        return {(r.output_id, r.source): r for r in conn.execute(select(labels))}


def test_labels_replace_per_source_and_are_kept_across_sources(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a"), out("b")], clock)
    assert store_labels(engine, [lab("a", "pass"), lab("b", "pass")], clock) == WriteCounts(stored=2)
    later = clock + timedelta(days=1)
    counts = store_labels(
        engine, [lab("a", "fail", reason="wrong"), lab("a", "pass", source="judge:rubric", score=0.8)], later
    )
    assert counts == WriteCounts(stored=1, replaced=1)
    rows = label_rows(engine)
    assert set(rows) == {("a", "human:ana"), ("b", "human:ana"), ("a", "judge:rubric")}
    replaced = rows[("a", "human:ana")]
    assert (replaced.verdict, replaced.reason, replaced.received_at) == ("fail", "wrong", later)
    assert (rows[("a", "judge:rubric")].source_kind, rows[("a", "judge:rubric")].score) == ("judge", 0.8)
    with engine.connect() as conn:
        by_feature = {item.name: item for item in feature_counts(conn)}
    assert (by_feature["support"].human_labels, by_feature["support"].judge_labels) == (2, 1)


def test_the_last_label_of_a_source_in_one_batch_wins(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a")], clock)
    counts = store_labels(engine, [lab("a", "pass"), lab("a", "unsure", reason="?"), lab("a", "fail")], clock)
    assert counts == WriteCounts(stored=1, replaced=2)
    assert label_rows(engine)[("a", "human:ana")].verdict == "fail"


def test_a_label_sent_again_unchanged_is_a_duplicate_and_changes_nothing(
    engine: Engine, clock: datetime
) -> None:
    store_outputs(engine, [out("a"), out("b")], clock)
    batch = [lab("a", "fail", reason="wrong", score=0.1), lab("b", ts="2026-03-01T00:00:00Z")]
    assert store_labels(engine, batch, clock) == WriteCounts(stored=2)
    later = clock + timedelta(days=2)
    assert store_labels(engine, [*batch, lab("b")], later) == WriteCounts(duplicates=3)
    rows = label_rows(engine)
    assert {row.received_at for row in rows.values()} == {clock}
    # A different score (or reason, verdict, time) is a new opinion: it replaces.
    assert store_labels(engine, [lab("a", "fail", reason="wrong", score=0.2)], later) == WriteCounts(
        replaced=1
    )
    assert label_rows(engine)[("a", "human:ana")].score == 0.2


def test_label_time_defaults_to_now_and_keeps_a_given_one(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a"), out("b")], clock)
    store_labels(engine, [lab("a"), lab("b", ts="2026-03-01T12:00:00+01:00")], clock)
    rows = label_rows(engine)
    assert rows[("a", "human:ana")].ts == clock
    assert rows[("b", "human:ana")].ts == datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_a_label_for_a_missing_output_rejects_the_whole_batch(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a"), out("b")], clock)
    batch = [lab("a"), lab("ghost"), lab("b")]
    with pytest.raises(InputError) as caught, engine.begin() as conn:
        insert_labels(conn, batch, clock)
    assert caught.value.field == "output_id"
    assert caught.value.line == 1  # the batch index of the bad label
    assert "ghost" in caught.value.message
    assert label_rows(engine) == {}


def test_a_label_must_name_the_outputs_feature(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a", feature="triage")], clock)
    with pytest.raises(InputError), engine.begin() as conn:
        insert_labels(conn, [lab("a")], clock)  # lab() says feature "support"


# --------------------------------------------------------------------------- transactions


def test_another_transaction_sees_nothing_of_a_batch_until_commit_and_nothing_after_rollback(
    engine: Engine, clock: datetime
) -> None:
    store_outputs(engine, [out("kept")], clock)
    with engine.connect() as writer:
        writer.begin()
        assert insert_outputs(writer, [out(f"n{i}") for i in range(50)], clock).stored == 50
        assert writer.scalar(select(func.count()).select_from(outputs)) == 51
        with engine.connect() as reader:  # a second connection, while the first is still open
            assert list(reader.scalars(select(outputs.c.output_id))) == ["kept"]
            assert feature_counts(reader)[0].outputs == 1
        writer.rollback()
    assert stored_ids(engine) == ["kept"]
    with engine.connect() as conn:
        assert feature_counts(conn)[0].outputs == 1
    # The same ids can be stored afterwards: nothing half-written blocks them.
    assert store_outputs(engine, [out(f"n{i}") for i in range(50)], clock) == WriteCounts(stored=50)


def test_a_failure_midway_leaves_nothing_of_the_transaction(engine: Engine, clock: datetime) -> None:
    store_outputs(engine, [out("a")], clock)
    with pytest.raises(InputError), engine.begin() as conn:
        insert_outputs(conn, [out("b"), out("c")], clock)
        insert_labels(conn, [lab("missing")], clock)
    assert stored_ids(engine) == ["a"]


def test_large_batches_are_counted_exactly(engine: Engine, clock: datetime) -> None:
    batch = [out(f"id-{i % 2500}", minutes=i) for i in range(6000)]
    assert store_outputs(engine, batch, clock) == WriteCounts(stored=2500, duplicates=3500)
    assert store_outputs(engine, batch[:100], clock) == WriteCounts(duplicates=100)
    with engine.connect() as conn:
        assert feature_counts(conn)[0].outputs == 2500
        assert feature_counts(conn)[0].last_output_ts == T0 + timedelta(minutes=2499)
