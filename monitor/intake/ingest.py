"""Import JSONL files of logged outputs or labels into the store.

One transaction per file: by default a file with any bad line stores nothing, and every bad
line (up to a cap) is reported with its number and field. With `skip_bad` the good lines are
stored and the bad ones are written, with their reasons, to a rejects file. Lines stream
through in batches, so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Generic, TypeVar

from sqlalchemy import Connection, Engine

from monitor.errors import InputError
from monitor.records import BadLine, LabelRecord, OutputRecord, loads, validate_label, validate_output
from monitor.store.writes import WriteCounts, bulk_writes, insert_labels, insert_outputs, missing_outputs

BATCH = 10_000  # records per write: big enough to amortize a round trip, small for memory
UTF8_BOM = b"\xef\xbb\xbf"
MAX_REPORTED = 50

R = TypeVar("R", OutputRecord, LabelRecord)


@dataclass
class FileSummary:
    source: str
    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    rejected: int = 0
    lines: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    rejects_file: Path | None = None
    committed: bool = True

    def describe(self, kind: str) -> str:
        text = f"{self.source}: {self.stored} {kind} stored, {self.duplicates} duplicate"
        if self.replaced:
            text += f", {self.replaced} replaced"
        text += f", {self.rejected} rejected"
        if self.rejects_file is not None and self.rejected:
            text += f" (written to {self.rejects_file})"
        if not self.committed:
            text += " - nothing from this file was stored"
        return text


@dataclass(frozen=True)
class RecordKind(Generic[R]):
    name: str
    validate: Callable[[object], R]
    write: Callable[[Connection, Sequence[R], datetime], WriteCounts]
    missing: Callable[[Connection, Sequence[R]], list[int]] | None = None


OUTPUTS: RecordKind[OutputRecord] = RecordKind("outputs", validate_output, insert_outputs)
LABELS: RecordKind[LabelRecord] = RecordKind("labels", validate_label, insert_labels, missing_outputs)


def parse_line(raw: bytes, number: int, validate: Callable[[object], R]) -> R:
    """One JSONL line into a validated record, or an InputError naming the line and field."""
    if number == 1 and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    try:
        return validate(loads(raw))
    except InputError as exc:
        exc.line = number
        raise


@contextmanager
def _open(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", source=path) from None
    with handle:
        yield handle


PROGRESS_SECONDS = 0.2  # how often a long import redraws its progress line


class _Progress:
    """A one-line progress report on a terminal; silent when standard error is not one."""

    def __init__(self, source: str, total_bytes: int | None) -> None:
        self.enabled = sys.stderr.isatty()
        self.source = source
        self.total = total_bytes
        self.last = 0.0

    def update(self, lines: int, done_bytes: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        share = f" {100 * done_bytes / self.total:5.1f}%" if self.total else ""
        sys.stderr.write(f"\r{self.source}:{share} {lines:,} lines")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def import_file(
    engine: Engine,
    path: str,
    kind: RecordKind[R],
    now: Callable[[], datetime],
    *,
    skip_bad: bool = False,
    rejects_dir: Path | None = None,
    prepare: Callable[[R], R] | None = None,
) -> FileSummary:
    """Import one JSONL file (`-` for standard input) in one transaction.

    `prepare` changes each valid record before it is stored (privacy's redaction).
    """
    source = "<stdin>" if path == "-" else path
    summary = FileSummary(source=source)
    rejects = _Rejects(path, kind.name, rejects_dir)
    size = Path(path).stat().st_size if path != "-" and Path(path).is_file() else None
    progress = _Progress(source, size)
    try:
        with _open(path) as stream, _rarer_young_collections(), engine.begin() as conn:
            with bulk_writes(conn):
                _stream_into(
                    conn, stream, kind, now, summary, rejects if skip_bad else None, progress, prepare
                )
            if summary.rejected and not skip_bad:
                summary.committed = False
                summary.stored = summary.duplicates = summary.replaced = 0
                conn.rollback()
    finally:
        progress.close()
        rejects.close()
    summary.rejects_file = rejects.path
    return summary


def _stream_into(
    conn: Connection,
    stream: IO[bytes],
    kind: RecordKind[R],
    now: Callable[[], datetime],
    summary: FileSummary,
    rejects: _Rejects | None,
    progress: _Progress,
    prepare: Callable[[R], R] | None = None,
) -> None:
    """Validate every line; write the good ones in batches (none once a line was bad, unless skipping)."""
    batch: list[tuple[int, R]] = []
    done_bytes = 0
    for number, raw in enumerate(stream, start=1):
        done_bytes += len(raw)
        if raw.isspace():
            continue
        summary.lines += 1
        try:
            record = parse_line(raw, number, kind.validate)
        except InputError as exc:
            text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
            _reject(summary, rejects, BadLine(number, exc.field, exc.message, text))
            continue
        if summary.rejected and rejects is None:
            continue  # keep reading to report every bad line; nothing will be stored
        if prepare is not None:
            record = prepare(record)
        batch.append((number, record))
        if len(batch) >= BATCH:
            _write_batch(conn, kind, batch, now(), summary, rejects)
            batch = []
            progress.update(summary.lines, done_bytes)
    if batch and not (summary.rejected and rejects is None):
        _write_batch(conn, kind, batch, now(), summary, rejects)


@contextmanager
def _rarer_young_collections() -> Iterator[None]:
    """Collect young objects every 50,000 allocations instead of 700 while lines stream through.

    Decoded lines hold no reference cycles; scanning them that often costs about a tenth of
    an import. The thresholds are put back afterwards.
    """
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 50_000), middle, old)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)


class _Rejects:
    """The rejects file of a `--skip-bad` import, opened on the first bad line."""

    def __init__(self, path: str, kind: str, directory: Path | None) -> None:
        base = Path("stdin" if path == "-" else path).name
        folder = directory or (Path.cwd() if path == "-" else Path(path).resolve().parent)
        self.target = folder / f"{base}.{kind}.rejects.{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
        self.path: Path | None = None
        self.handle: IO[str] | None = None

    def write(self, bad: BadLine) -> None:
        if self.handle is None:
            self.handle = open(self.target, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self.path = self.target
        self.handle.write(
            json.dumps(
                {"line": bad.line, "field": bad.field, "error": bad.message, "text": bad.text},
                ensure_ascii=False,
            )
            + "\n"
        )

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _reject(summary: FileSummary, rejects: _Rejects | None, bad: BadLine) -> None:
    summary.rejected += 1
    if len(summary.bad_lines) < MAX_REPORTED:
        summary.bad_lines.append(bad)
    if rejects is not None:
        rejects.write(bad)


def _write_batch(
    conn: Connection,
    kind: RecordKind[R],
    batch: list[tuple[int, R]],
    now: datetime,
    summary: FileSummary,
    rejects: _Rejects | None,
) -> None:
    records = [record for _, record in batch]
    if kind.missing is not None:
        missing = set(kind.missing(conn, records))
        for index in sorted(missing):
            number, record = batch[index]
            _reject(
                summary,
                rejects,
                BadLine(
                    number,
                    "output_id",
                    "no stored output with this id in its feature",
                    json.dumps(record.to_json()),
                ),
            )
        if missing and rejects is None:
            return
        records = [record for i, record in enumerate(records) if i not in missing]
    counts = kind.write(conn, records, now)
    summary.stored += counts.stored
    summary.duplicates += counts.duplicates
    summary.replaced += counts.replaced


def read_records(path: str, kind: RecordKind[R]) -> Iterator[R]:
    """Validated records of a JSONL file, stopping at the first bad line with its number and field."""
    source = "<stdin>" if path == "-" else path
    with _open(path) as stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                yield parse_line(raw, number, kind.validate)
            except InputError as exc:
                exc.source = source
                raise InputError(exc.message, source=source, line=number, field=exc.field) from None
