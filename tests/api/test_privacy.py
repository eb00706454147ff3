"""Privacy (issue 7): redaction of personal data before storage (CLI and API) or before judges,
and retention of raw inputs and outputs, on both stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_support import NOW, site
from sqlalchemy import Engine, select

from monitor.config import FeatureSettings, PrivacySettings, Settings
from monitor.errors import ConfigError
from monitor.intake.privacy import Redactor, apply_retention, delete_unsampled_text, luhn_ok
from monitor.judges.runner import JudgeLabeller
from monitor.records import LabelRecord, validate_output
from monitor.store.tables import labels, outputs, samples
from monitor.store.writes import insert_labels, insert_outputs

FEATURE = "support-reply"
PERSONAL_INPUT = "I am ana.b@example.com, call me on +49 30 1234567, card 4111 1111 1111 1111"
PERSONAL_OUTPUT = {
    "reply": "Refund sent to DE89 3704 0044 0532 0130 00",
    "contact@example.org": ["ticket ACME-1234", 5, None, "(030) 123-4567"],
}
REDACTED_INPUT = "I am [EMAIL], call me on [PHONE], card [CARD]"
REDACTED_OUTPUT = {
    "reply": "Refund sent to [IBAN]",
    "contact@example.org": ["ticket [REDACTED]", 5, None, "[PHONE]"],
}


def personal(index: int, days_old: float = 1.0) -> dict[str, Any]:
    ts = (NOW - timedelta(days=days_old, minutes=index)).isoformat().replace("+00:00", "Z")
    return {
        "id": f"out-{index}",
        "feature": FEATURE,
        "ts": ts,
        "input": PERSONAL_INPUT,
        "output": PERSONAL_OUTPUT,
        "signals": {"confidence": 0.9},
    }


def privacy_settings(database_url: str = "", **privacy: Any) -> Settings:
    return Settings(
        database_url=database_url,
        features={FEATURE: FeatureSettings(owner="team@example.com")},
        privacy=PrivacySettings(**{"redact": True, "patterns": (r"ACME-[0-9]+",), **privacy}),
    )


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.output_id: row for row in conn.execute(select(outputs))}


# --------------------------------------------------------------------------- the redactor


def test_the_redactor_finds_emails_phones_luhn_checked_cards_ibans_and_configured_patterns() -> None:
    redactor = Redactor([r"ACME-[0-9]+"])
    assert redactor.text(PERSONAL_INPUT) == REDACTED_INPUT
    assert redactor.value(PERSONAL_OUTPUT) == REDACTED_OUTPUT
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert redactor.text("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"  # fails Luhn: kept
    assert redactor.text("5500-0000-0000-0004") == "[CARD]"
    kept = "on 2026-03-01 order 12345 cost 3.14159 EUR, v1.2.3, 100 items"
    assert redactor.text(kept) == kept
    assert redactor.value([1, 2.5, True, None]) == [1, 2.5, True, None]


def test_a_bad_pattern_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text("privacy:\n  redact: true\n  patterns: ['([a-z']\n", encoding="utf-8")
    from monitor.config import load_settings

    with pytest.raises(ConfigError, match="invalid regular expression"):
        load_settings(config)


# --------------------------------------------------------------------------- before storage


def test_aiqm_ingest_redacts_before_storage(
    engine: Engine, store_url: str, aiqm: Any, tmp_path: Path
) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        orjson.dumps(
            {"database_url": store_url, "privacy": {"redact": True, "patterns": [r"ACME-[0-9]+"]}}
        ).decode(),
        encoding="utf-8",
    )
    data = tmp_path / "outputs.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(personal(i)) for i in range(3)) + b"\n")
    done = aiqm("ingest", data, "--config", config)
    assert done.code == 0, done.err
    rows = stored(engine)
    assert len(rows) == 3
    for row in rows.values():
        assert row.input == REDACTED_INPUT and row.output == REDACTED_OUTPUT
        assert row.input_length == len(REDACTED_INPUT)
        assert row.signals == {"confidence": 0.9}


def test_the_ingest_endpoint_redacts_before_storage(engine: Engine) -> None:
    with site(engine, privacy_settings()) as served:
        answer = served.post("/v1/outputs", "ingest", [personal(i) for i in range(4)])
        assert answer.status_code == 200, answer.text
    rows = stored(engine)
    assert len(rows) == 4
    assert all(row.input == REDACTED_INPUT and row.output == REDACTED_OUTPUT for row in rows.values())


def test_without_redaction_the_text_is_stored_as_sent(engine: Engine) -> None:
    with site(engine, privacy_settings(redact=False)) as served:
        assert served.post("/v1/outputs", "ingest", [personal(0)]).status_code == 200
    row = stored(engine)["out-0"]
    assert row.input == PERSONAL_INPUT and row.output == PERSONAL_OUTPUT


# --------------------------------------------------------------------------- before judges


def test_redact_before_judges_stores_raw_text_but_judges_see_it_redacted(engine: Engine) -> None:
    judge = {"kind": "pattern", "name": "no-pii", "must_not": [r"DE89 3704", r"123-4567"]}
    settings = Settings(
        features={FEATURE: FeatureSettings(judges=({**judge},))},
        privacy=PrivacySettings(redact=True, redact_before="judges"),
    )
    with site(engine, settings) as served:
        assert served.post("/v1/outputs", "ingest", [personal(0)]).status_code == 200
    assert stored(engine)["out-0"].input == PERSONAL_INPUT  # the store keeps what was sent
    verdicts = JudgeLabeller(engine, settings, lambda: NOW).label(FEATURE, ["out-0"], NOW)
    assert [v.verdict for v in verdicts] == ["pass"]  # the judge never saw the IBAN or the phone number
    unredacted = Settings(features={FEATURE: FeatureSettings(judges=({**judge},))})
    later = NOW + timedelta(days=7)
    assert [
        v.verdict for v in JudgeLabeller(engine, unredacted, lambda: later).label(FEATURE, ["out-0"], later)
    ] == ["fail"]


# --------------------------------------------------------------------------- retention


def test_retention_deletes_old_raw_text_and_keeps_lengths_signals_and_labels(engine: Engine) -> None:
    records = [validate_output(personal(i, days_old=40 if i < 3 else 5)) for i in range(6)]
    with engine.begin() as conn:
        insert_outputs(conn, records, NOW)
        insert_labels(
            conn,
            [
                LabelRecord(
                    output_id=f"out-{i}", feature=FEATURE, verdict="fail", source="human:ana", reason="x"
                )
                for i in range(6)
            ],
            NOW,
        )
    assert apply_retention(engine, 30, NOW, chunk=2) == 3
    assert apply_retention(engine, 30, NOW) == 0  # nothing left to delete
    rows = stored(engine)
    for i in range(6):
        row = rows[f"out-{i}"]
        if i < 3:
            assert row.input is None and row.output is None
        else:
            assert row.input == PERSONAL_INPUT and row.output == PERSONAL_OUTPUT
        assert row.input_length == len(PERSONAL_INPUT) and row.output_length is not None
        assert row.signals == {"confidence": 0.9}
    with engine.connect() as conn:
        verdicts = {row.output_id: row.verdict for row in conn.execute(select(labels))}
    assert verdicts == {f"out-{i}": "fail" for i in range(6)}


def test_unsampled_text_is_deleted_in_the_half_open_window_once_and_sampled_text_stays(
    engine: Engine,
) -> None:
    start, end = NOW - timedelta(days=2), NOW - timedelta(days=1)
    moments = [
        start - timedelta(seconds=1),
        start,
        start + timedelta(hours=5),
        end - timedelta(seconds=1),
        end,
    ]
    records = [
        validate_output({**personal(i), "ts": moment.isoformat().replace("+00:00", "Z")})
        for i, moment in enumerate(moments)
    ]
    with engine.begin() as conn:
        insert_outputs(conn, records, NOW)
        conn.execute(
            samples.insert().values(
                feature=FEATURE,
                output_id="out-2",
                cycle_at=end,
                stratum="all",
                inclusion_prob=0.5,
                drawn_at=NOW,
            )
        )
    # An hour per transaction; the window is a day, so this is 24 of them.
    assert delete_unsampled_text(engine, FEATURE, start, end, step=timedelta(hours=1)) == 2
    assert delete_unsampled_text(engine, FEATURE, start, end) == 0  # nothing left to do
    assert delete_unsampled_text(engine, "another-feature", NOW - timedelta(days=9), NOW) == 0
    rows = stored(engine)
    assert {output_id for output_id, row in rows.items() if row.input is None} == {"out-1", "out-3"}
    assert all(row.input_length == len(PERSONAL_INPUT) for row in rows.values())


def test_aiqm_retention_uses_the_configured_days(
    engine: Engine, store_url: str, aiqm: Any, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(personal(i, days_old=400)) for i in range(2)], NOW)
    config = tmp_path / "aiqm.yaml"
    config.write_text(f"database_url: '{store_url}'\nprivacy:\n  retention_days: 90\n", encoding="utf-8")
    done = aiqm("retention", "--config", config)
    assert done.code == 0, done.err
    assert "2 outputs" in done.out
    assert all(row.input is None for row in stored(engine).values())
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"database_url: '{store_url}'\n", encoding="utf-8")
    refused = aiqm("retention", "--config", bare)
    assert refused.code == 2 and "retention_days" in refused.err


def test_the_daemon_runs_retention_at_start_and_then_at_every_interval(engine: Engine) -> None:
    import time

    from monitor.intake.privacy import RetentionLoop

    assert RetentionLoop.start_for(Settings(), engine, lambda: NOW) is None  # not configured: no loop
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(personal(0, days_old=100))], NOW)
    loop = RetentionLoop(engine, 30, lambda: NOW, interval_seconds=0.05)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while loop.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        loop.stop()
    assert loop.runs >= 2
    assert stored(engine)["out-0"].input is None
