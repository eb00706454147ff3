"""Property-based fuzzing of everything that reads untrusted input (issue 7, "Bad input").

The JSONL reader and `aiqm ingest`'s import, the ingest and label endpoints over real HTTP,
and the config loader get arbitrary bytes, deep nesting, huge numbers, NUL, invalid UTF-8,
byte-order marks, overlong lines and hostile text. Never a crash or traceback, never a 500,
never a partial file or batch (the store's row counts before and after say so); hostile text
(SQL and HTML) in every text field round-trips unchanged through both stores.

Every loop is bounded: a modest `max_examples` per property, no deadline (a loaded machine
must not turn slow examples into failures).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from api_support import NOW, label, served, settings_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from monitor.config import Settings, load_settings
from monitor.daemon.app import build_services
from monitor.errors import ConfigError, InputError
from monitor.intake.ingest import OUTPUTS, import_file, parse_line
from monitor.records import OutputRecord, validate_label, validate_output
from monitor.store.engine import make_engine
from monitor.store.tables import labels, outputs
from monitor.store.writes import insert_labels, insert_outputs

SQL = "'; DROP TABLE outputs;-- \" OR 1=1 /*"
HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>&amp;"
HOSTILE = (SQL, HTML, "\u202e\ufeff\u200b", "ünïcødé ✓ 𝄞", "\\x00 not a NUL", "%s %(x)s {0} ${x}")
TS = "2026-03-01T12:00:00Z"
FEATURE = "support-reply"

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --------------------------------------------------------------------------- strategies

texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A logged output that may or may not be valid: every field drawn from hostile values."""
    record: dict[str, Any] = {
        "id": draw(st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=30))),
        "feature": draw(st.sampled_from([FEATURE, "other.feature", "bad feature!", ""])),
        "ts": draw(st.sampled_from([TS, "2026-02-30T00:00:00Z", "yesterday", "2026-03-01T12:00:00"])),
    }
    for name in ("input", "output", "metadata"):
        if draw(st.booleans()):
            record[name] = draw(json_values)
    for name in ("model_version", "config_version"):
        if draw(st.booleans()):
            record[name] = draw(texts)
    if draw(st.booleans()):
        record["segment"] = draw(st.dictionaries(texts, texts, max_size=3))
    if draw(st.booleans()):
        record["signals"] = draw(st.dictionaries(texts, json_leaves, max_size=3))
    if draw(st.booleans()):
        record["user_action"] = draw(st.sampled_from(["accepted", "rejected", HTML, 3]))
    if draw(st.integers(0, 9)) == 0:
        record[draw(texts)] = "an unknown field"
    return record


def _deep(depth: int, digits: bool) -> bytes:
    leaf = b"1234567890123456789012" if digits else b"1"
    return b"[" * depth + leaf + b"]" * depth


_TS = TS.encode()
SPECIAL_LINES = {
    "infinite signal": b'{"id":"a","feature":"f","ts":"' + _TS + b'","signals":{"x":1e999}}',
    "5000-digit integer": b'{"id":"a","feature":"f","ts":"'
    + _TS
    + b'","metadata":{"n":'
    + b"9" * 5000
    + b"}}",
    "400-digit integer": b'{"id":"a","feature":"f","ts":"' + _TS + b'","metadata":{"n":' + b"9" * 400 + b"}}",
    "escaped NUL": b'{"id":"a\\u0000","feature":"f","ts":"' + _TS + b'"}',
    "invalid UTF-8": b'{"id":"\xff\xfe","feature":"f","ts":"' + _TS + b'"}',
    "lone surrogate": b'{"id":"\\ud800","feature":"f","ts":"' + _TS + b'"}',
    "BOM": b"\xef\xbb\xbf" + b'{"id":"bom","feature":"f","ts":"' + _TS + b'"}',
    "2 MB line": b'{"id":"long","feature":"f","ts":"' + _TS + b'","output":"' + b"x" * 2_000_000 + b'"}',
    "NaN": b"NaN",
    "empty array": b"[]",
    "null": b"null",
}


def _special(name: str) -> bytes:
    return SPECIAL_LINES[name]


def _dumps(value: Any) -> bytes:
    """JSON text of a drawn value: orjson, or the standard library for integers past 64 bits."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


hostile_lines = st.one_of(
    st.binary(max_size=200),
    st.builds(_dumps, records()),
    st.builds(_deep, st.integers(1, 3000), st.booleans()),
    st.sampled_from(sorted(SPECIAL_LINES)).map(_special),
)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture(scope="module")
def sqlite_engine(stores: Any) -> Iterator[Engine]:
    """One SQLite store for a module's examples (they only ever add rows, counted before and after)."""
    engine = make_engine(stores.sqlite())
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------- the JSONL reader


@FUZZ
@given(raw=hostile_lines, number=st.integers(1, 3))
def test_a_line_is_a_record_or_an_input_error_never_anything_else(raw: bytes, number: int) -> None:
    try:
        record = parse_line(raw, number, validate_output)
    except InputError as exc:
        assert exc.line == number and exc.message
    else:
        assert isinstance(record, OutputRecord)
        json.dumps(record.to_json())
    with contextlib.suppress(InputError, orjson.JSONDecodeError):
        validate_label(orjson.loads(raw))


@FUZZ
@given(lines=st.lists(hostile_lines, min_size=1, max_size=6))
def test_a_file_is_imported_whole_or_not_at_all(sqlite_engine: Engine, lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "outputs.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        before = _count(sqlite_engine, outputs)
        summary = import_file(sqlite_engine, str(path), OUTPUTS, lambda: NOW)
        after = _count(sqlite_engine, outputs)
    if summary.rejected:
        assert not summary.committed and after == before and summary.stored == 0
        assert all(bad.line >= 1 and bad.message for bad in summary.bad_lines)
    else:
        assert summary.committed and after == before + summary.stored
        assert summary.stored + summary.duplicates == summary.lines


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(hostile_lines, min_size=1, max_size=4))
def test_aiqm_ingest_never_shows_a_traceback(
    lines: list[bytes],
) -> None:
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "ingest", str(path)],
            capture_output=True,
            cwd=folder,
            env={"PATH": "/usr/bin:/bin", "AIQM_DATA_DIR": folder},
            timeout=60,
            check=False,
        )
    assert done.returncode in (0, 2), done.stderr
    assert b"Traceback" not in done.stderr


# --------------------------------------------------------------------------- the endpoints


bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(_dumps, st.lists(records(), max_size=5)),
    st.builds(_dumps, json_values),
    st.builds(_deep, st.integers(1, 3000), st.booleans()),
    hostile_lines,
)


def test_the_ingest_endpoint_never_answers_500_nor_stores_part_of_a_batch(sqlite_engine: Engine) -> None:
    import httpx

    services = build_services(settings_for(), engine=sqlite_engine, clock=lambda: NOW, scheduler=False)
    from api_support import mint

    tokens = mint(sqlite_engine, prefix="fuzz-outputs-")
    with served(services) as url, httpx.Client(base_url=url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {tokens['ingest']}", "Content-Type": "application/json"}

        @FUZZ
        @given(body=bodies)
        def post(body: bytes) -> None:
            before = _count(sqlite_engine, outputs)
            answer = http.post("/v1/outputs", content=body, headers=headers)
            after = _count(sqlite_engine, outputs)
            assert answer.status_code in (200, 413, 422), answer.text
            if answer.status_code == 200:
                assert after == before + answer.json()["stored"]
            else:
                assert after == before
                assert "Traceback" not in answer.text

        post()


def test_the_label_endpoint_never_answers_500_nor_stores_part_of_a_batch(sqlite_engine: Engine) -> None:
    import httpx
    from api_support import mint, output

    with sqlite_engine.begin() as conn:
        insert_outputs(conn, [validate_output(output(i)) for i in range(5)], NOW)
    services = build_services(settings_for(), engine=sqlite_engine, clock=lambda: NOW, scheduler=False)
    tokens = mint(sqlite_engine, prefix="fuzz-labels-")
    label_items = st.one_of(
        st.builds(
            lambda i, verdict, reason, score: label(i, verdict, reason=reason, score=score),
            st.integers(0, 7),
            st.sampled_from(["pass", "fail", "unsure", HTML]),
            texts,
            st.one_of(st.none(), st.floats(-1, 2), st.text(max_size=3)),
        ),
        json_values,
    )
    label_bodies = st.one_of(
        st.builds(_dumps, st.lists(label_items, max_size=5)),
        bodies,
    )
    with served(services) as url, httpx.Client(base_url=url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {tokens['review']}", "Content-Type": "application/json"}

        @FUZZ
        @given(body=label_bodies)
        def post(body: bytes) -> None:
            before = _count(sqlite_engine, labels)
            answer = http.post("/v1/labels", content=body, headers=headers)
            after = _count(sqlite_engine, labels)
            assert answer.status_code in (200, 413, 422), answer.text
            if answer.status_code == 200:
                assert after == before + answer.json()["stored"]
            else:
                assert after == before

        post()


# --------------------------------------------------------------------------- the config loader

yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)
config_keys = st.sampled_from(
    ["database_url", "data_dir", "server", "metrics", "tokens", "webhooks", "defaults", "features", "privacy"]
)


@st.composite
def config_texts(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if choice == 2:
        return b"a: " + b"[" * draw(st.integers(1, 5000))
    document = draw(st.dictionaries(config_keys | st.text(max_size=10), yaml_values, max_size=4))
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8")


@FUZZ
@given(text=config_texts())
def test_the_config_loader_gives_settings_or_a_config_error(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "aiqm.yaml"
        path.write_bytes(text)
        try:
            loaded = load_settings(path)
        except ConfigError as exc:
            assert str(path) in str(exc) or "environment" in str(exc)
        else:
            assert isinstance(loaded, Settings)


# --------------------------------------------------------------------------- hostile text round-trips


def _hostile_record(index: int, text: str) -> dict[str, Any]:
    return {
        "id": f"{text}-{index}"[:200],
        "feature": FEATURE,
        "ts": TS,
        "input": text,
        "output": {"answer": text, text: [text, 1, None]},
        "model_version": text[:200],
        "config_version": text[:200],
        "segment": {text[:200]: text[:200]},
        "signals": {text[:200] or "x": 1.5},
        "user_action": "edited",
        "metadata": {"note": text, text: text},
    }


def test_hostile_text_round_trips_unchanged_through_the_store(engine: Engine) -> None:
    sent = [validate_output(_hostile_record(i, text)) for i, text in enumerate(HOSTILE)]
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    with engine.begin() as conn:
        assert insert_outputs(conn, sent, now).stored == len(sent)
        marks = [
            validate_label(
                {
                    "output_id": r.id,
                    "feature": FEATURE,
                    "verdict": "fail",
                    "source": "human:o'brien",
                    "reason": text,
                }
            )
            for r, text in zip(sent, HOSTILE, strict=True)
        ]
        assert insert_labels(conn, marks, now).stored == len(marks)
    with engine.connect() as conn:
        rows = {row.output_id: row for row in conn.execute(select(outputs))}
        reasons = {row.output_id: row.reason for row in conn.execute(select(labels))}
    assert len(rows) == len(sent)
    for record in sent:
        row = rows[record.id]
        for name in ("input", "output", "model_version", "config_version", "segment", "signals", "metadata"):
            assert row._mapping[name] == getattr(record, name), name
    assert [reasons[r.id] for r in sent] == list(HOSTILE)
