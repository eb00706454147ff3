"""`aiqm ingest` and `aiqm labels import` through the real command line, on both stores.

The issue's "Done when": a simulated history is stored whole; a second ingest stores none and
says they were duplicates; a file whose 4th line has "ts": "yesterday" exits 2, names line 4
and the field ts, prints no traceback and stores nothing; its labels import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from monitor.demo.simulate import LANGUAGES, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, RecordKind, import_file
from monitor.records import OutputRecord, validate_output
from monitor.store.engine import make_engine
from monitor.store.tables import features, labels, outputs
from monitor.store.writes import WriteCounts, insert_outputs

if TYPE_CHECKING:
    from conftest import CliRunner

SPEC = HistorySpec(
    feature="support-reply",
    weeks=3,
    volume=60,
    pass_rate=0.9,
    segments={"language": LANGUAGES},
    label_fraction=0.5,
    seed=7,
)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, int]:
    """A small simulated history: outputs.jsonl, labels.jsonl, and how many lines each has."""
    outputs_path, labels_path, count = write_history(SPEC, tmp_path_factory.mktemp("history"))
    label_count = sum(1 for line in labels_path.read_text().splitlines() if line.strip())
    assert count > 100 and 0 < label_count < count
    return outputs_path, labels_path, count, label_count


def count_rows(url: str, table: Any) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def summary_counts(text: str, kind: str = "outputs") -> dict[str, int]:
    match = re.search(rf"(\d+) {kind} stored, (\d+) duplicate(?:, (\d+) replaced)?, (\d+) rejected", text)
    assert match, f"no summary in {text!r}"
    stored, duplicate, replaced, rejected = match.groups()
    return {
        "stored": int(stored),
        "duplicate": int(duplicate),
        "replaced": int(replaced or 0),
        "rejected": int(rejected),
    }


def bad_history(tmp_path: Path, outputs_path: Path, bad_line: str, at: int = 4, total: int = 8) -> Path:
    good = outputs_path.read_text(encoding="utf-8").splitlines()[: total - 1]
    lines = [*good[: at - 1], bad_line, *good[at - 1 :]]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


YESTERDAY = '{"id": "bad-4", "feature": "support-reply", "ts": "yesterday"}'


# --------------------------------------------------------------------------- the "Done when"


def test_ingest_stores_the_whole_history_then_only_duplicates(
    aiqm: CliRunner, store_url: str, history: tuple[Path, Path, int, int]
) -> None:
    outputs_path, _, count, _ = history
    env = {"AIQM_DATABASE_URL": store_url}
    first = aiqm("ingest", outputs_path, env=env)
    assert first.code == 0, first.err
    assert summary_counts(first.out) == {"stored": count, "duplicate": 0, "replaced": 0, "rejected": 0}
    assert count_rows(store_url, outputs) == count

    second = aiqm("ingest", outputs_path, env=env)
    assert second.code == 0, second.err
    assert summary_counts(second.out) == {"stored": 0, "duplicate": count, "replaced": 0, "rejected": 0}
    assert count_rows(store_url, outputs) == count


def test_a_bad_timestamp_on_line_4_exits_2_names_it_and_stores_nothing(
    aiqm_proc: CliRunner, store_url: str, history: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    path = bad_history(tmp_path, history[0], YESTERDAY)
    result = aiqm_proc("ingest", path, env={"AIQM_DATABASE_URL": store_url})
    assert result.code == 2
    assert f"{path}:4:" in result.err
    assert "'ts'" in result.err
    assert "Traceback" not in result.err + result.out
    assert "nothing from this file was stored" in result.out
    assert count_rows(store_url, outputs) == 0


def test_labels_import_stores_the_historys_labels(
    aiqm: CliRunner, store_url: str, history: tuple[Path, Path, int, int]
) -> None:
    outputs_path, labels_path, _, label_count = history
    env = {"AIQM_DATABASE_URL": store_url}
    assert aiqm("ingest", outputs_path, env=env).code == 0
    result = aiqm("labels", "import", labels_path, env=env)
    assert result.code == 0, result.err
    assert summary_counts(result.out, "labels")["stored"] == label_count
    assert count_rows(store_url, labels) == label_count
    again = aiqm("labels", "import", labels_path, env=env)
    assert summary_counts(again.out, "labels") == {
        "stored": 0,
        "duplicate": label_count,
        "replaced": 0,
        "rejected": 0,
    }


# --------------------------------------------------------------------------- bad input


def test_every_bad_line_is_reported_with_its_number_and_field(
    aiqm: CliRunner, tmp_path: Path, history: tuple[Path, Path, int, int]
) -> None:
    good = history[0].read_text(encoding="utf-8").splitlines()
    lines = [
        good[0],
        '{"id": "x", "feature": "support-reply", "ts": "2026-03-02T06:00:00Z", "sigals": {}}',
        good[1],
        '{"id": "y", "feature": "support reply", "ts": "2026-03-02T06:00:00Z"}',
        "{not json",
        good[2],
    ]
    path = tmp_path / "several.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    result = aiqm("ingest", path, env={"AIQM_DATABASE_URL": db})
    assert result.code == 2
    reported = [line for line in result.err.splitlines() if line.startswith(f"{path}:")]
    assert reported[0].startswith(f"{path}:2: field 'sigals'")
    assert reported[1].startswith(f"{path}:4: field 'feature'")
    assert reported[2].startswith(f"{path}:5: ") and "not valid JSON" in reported[2]
    assert len(reported) == 3
    assert summary_counts(result.out)["rejected"] == 3
    assert count_rows(db, outputs) == 0


def test_reports_are_capped_but_the_count_is_complete(aiqm: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(f'{{"id": "{i}", "feature": "f", "ts": "no"}}\n' for i in range(120)))
    result = aiqm("ingest", path, env={"AIQM_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"})
    assert result.code == 2
    reported = re.findall(rf"^{re.escape(str(path))}:\d+: field 'ts'", result.err, flags=re.MULTILINE)
    assert 10 <= len(reported) < 120
    assert f"and {120 - len(reported)} more bad lines" in result.err
    assert summary_counts(result.out)["rejected"] == 120


def test_skip_bad_stores_the_good_lines_and_writes_the_bad_ones_with_reasons(
    aiqm: CliRunner, store_url: str, history: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    path = bad_history(tmp_path, history[0], YESTERDAY, total=8)
    path.write_bytes(path.read_bytes() + b'{"id": "\xff"}\n')
    rejects_dir = tmp_path / "rejects"
    rejects_dir.mkdir()
    result = aiqm(
        "ingest", "--skip-bad", "--rejects-dir", rejects_dir, path, env={"AIQM_DATABASE_URL": store_url}
    )
    assert result.code == 0, result.err
    assert summary_counts(result.out) == {"stored": 7, "duplicate": 0, "replaced": 0, "rejected": 2}
    assert count_rows(store_url, outputs) == 7
    (rejects_file,) = rejects_dir.iterdir()
    assert str(rejects_file) in result.out
    rejected = [json.loads(line) for line in rejects_file.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(4, "ts"), (9, "")]
    assert rejected[0]["text"] == YESTERDAY
    assert "RFC 3339" in rejected[0]["error"]
    assert "not UTF-8" in rejected[1]["error"] and "\\xff" in rejected[1]["text"]


def test_skip_bad_rejects_labels_whose_output_is_missing(
    aiqm: CliRunner, store_url: str, history: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    outputs_path, labels_path, _, _ = history
    env = {"AIQM_DATABASE_URL": store_url}
    assert aiqm("ingest", outputs_path, env=env).code == 0
    good = labels_path.read_text(encoding="utf-8").splitlines()[:5]
    ghost = '{"output_id": "ghost", "feature": "support-reply", "verdict": "pass", "source": "human:ana"}'
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join([*good[:2], ghost, *good[2:]]) + "\n", encoding="utf-8")

    strict = aiqm("labels", "import", path, env=env)
    assert strict.code == 2
    assert f"{path}:3: field 'output_id'" in strict.err
    assert count_rows(store_url, labels) == 0

    lenient = aiqm("labels", "import", "--skip-bad", "--rejects-dir", tmp_path, path, env=env)
    assert lenient.code == 0, lenient.err
    assert summary_counts(lenient.out, "labels")["stored"] == 5
    assert count_rows(store_url, labels) == 5
    (rejects_file,) = tmp_path.glob("labels.jsonl.labels.rejects.*")
    (reject,) = [json.loads(line) for line in rejects_file.read_text(encoding="utf-8").splitlines()]
    assert (reject["line"], reject["field"]) == (3, "output_id")


def test_non_utf8_bytes_exit_2_naming_the_line(
    aiqm_proc: CliRunner, tmp_path: Path, history: tuple[Path, Path, int, int]
) -> None:
    good = history[0].read_bytes().splitlines(keepends=True)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        good[0] + '{"id": "é", "feature": "f", "ts": "2026-03-02T06:00:00Z"}\n'.encode("latin-1")
    )
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = aiqm_proc("ingest", path, env={"AIQM_DATABASE_URL": db})
    assert result.code == 2
    assert f"{path}:2:" in result.err and "not UTF-8" in result.err
    assert "Traceback" not in result.err
    assert count_rows(db, outputs) == 0


def test_a_utf8_byte_order_mark_is_tolerated(aiqm: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "feature": "f", "ts": "2026-03-02T06:00:00Z"}\r\n')
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = aiqm("ingest", path, env={"AIQM_DATABASE_URL": db})
    assert result.code == 0, result.err
    assert count_rows(db, outputs) == 1


def test_an_empty_file_stores_nothing_and_succeeds(aiqm: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n  \n")
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = aiqm("ingest", path, env={"AIQM_DATABASE_URL": db})
    assert result.code == 0, result.err
    assert summary_counts(result.out) == {"stored": 0, "duplicate": 0, "replaced": 0, "rejected": 0}
    assert count_rows(db, features) == 0


def test_a_missing_file_exits_2_without_a_traceback(aiqm_proc: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = aiqm_proc("ingest", missing, env={"AIQM_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"})
    assert result.code == 2
    assert str(missing) in result.err
    assert "Traceback" not in result.err


def test_one_bad_file_does_not_block_the_good_ones(
    aiqm: CliRunner, tmp_path: Path, history: tuple[Path, Path, int, int]
) -> None:
    bad = bad_history(tmp_path, history[0], YESTERDAY)
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = aiqm("ingest", bad, history[0], env={"AIQM_DATABASE_URL": db})
    assert result.code == 2  # a file was refused
    assert count_rows(db, outputs) == history[2]  # the good file is stored whole, the bad one not at all


# --------------------------------------------------------------------------- standard input


def test_standard_input_is_read_with_a_dash(
    aiqm: CliRunner, aiqm_proc: CliRunner, store_url: str, history: tuple[Path, Path, int, int]
) -> None:
    outputs_path, _, count, _ = history
    env = {"AIQM_DATABASE_URL": store_url}
    result = aiqm_proc("ingest", "-", stdin=outputs_path.read_bytes(), env=env)
    assert result.code == 0, result.err
    assert result.out.startswith("<stdin>:")
    assert summary_counts(result.out)["stored"] == count
    again = aiqm("ingest", "-", stdin=outputs_path.read_bytes(), env=env)
    assert summary_counts(again.out)["duplicate"] == count


def test_a_bad_line_on_standard_input_is_named_too(aiqm: CliRunner, tmp_path: Path) -> None:
    data = b'{"id": "a", "feature": "f", "ts": "2026-03-02T06:00:00Z"}\n{"id": "b", "feature": "f"}\n'
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = aiqm("ingest", "-", stdin=data, env={"AIQM_DATABASE_URL": db})
    assert result.code == 2
    assert "<stdin>:2: field 'ts'" in result.err
    assert count_rows(db, outputs) == 0


# --------------------------------------------------------------------------- failures inside an import


def failing_kind(fail_on: str) -> RecordKind[OutputRecord]:
    """Outputs whose write (or validation) blows up once it meets the id `fail_on`."""

    def validate(raw: object) -> OutputRecord:
        record = validate_output(raw)
        if fail_on == f"validate:{record.id}":
            raise RuntimeError("validation crashed")
        return record

    def write(conn: Connection, records: Sequence[OutputRecord], now: datetime) -> WriteCounts:
        counts = insert_outputs(conn, records, now)
        if any(f"write:{r.id}" == fail_on for r in records):
            raise RuntimeError("the store went away")
        return counts

    return RecordKind("outputs", validate, write)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fail_on", ["write:support-reply-0000050", "validate:support-reply-0000120"])
def test_a_crash_midway_stores_nothing_and_does_not_hang(
    engine: Engine, history: tuple[Path, Path, int, int], monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    monkeypatch.setattr("monitor.intake.ingest.BATCH", 10)  # many batches, so the writer is mid-way
    with pytest.raises(RuntimeError):
        import_file(engine, str(history[0]), failing_kind(fail_on), lambda: datetime.now(UTC))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(outputs)) == 0
        assert conn.scalar(select(func.count()).select_from(features)) == 0


def test_small_batches_give_the_same_counts(
    engine: Engine, history: tuple[Path, Path, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.intake.ingest.BATCH", 7)
    path = str(history[0])
    first = import_file(engine, path, OUTPUTS, lambda: datetime.now(UTC))
    assert (first.stored, first.duplicates, first.committed) == (history[2], 0, True)
    second = import_file(engine, path, OUTPUTS, lambda: datetime.now(UTC))
    assert (second.stored, second.duplicates) == (0, history[2])
