"""Pull mode: read outputs where the app already writes them, a directory of JSONL logs.

Each file is known by its identity (device and inode), not its name, and its position (byte
offset and line count) is kept in the store, in the same transaction as the outputs read up
to it: a restart resumes exactly where the last committed batch ended, and a line is never
stored twice nor skipped. Followed through rotation:

- rename and a new file (``app.jsonl`` -> ``app.jsonl.1``, a new ``app.jsonl``): the renamed
  file is found again by its inode, even when it no longer matches the pattern, and its tail
  is read; the new file starts at offset 0;
- truncation (copytruncate): a file shorter than its position is read again from the start;
- a half-written last line (no newline yet) is left for the next pass.

Lines go through the same validation as `aiqm ingest`; bad lines are written with their
reasons to a rejects file in `rejects_dir` (default: the directory itself) and reported.
Positions are kept in the store's `pull_positions` table (migration 0005).

A line's text is stored with it, since the file may rotate away before a cycle samples it;
`privacy.unsampled_text: delete` drops it again for the outputs the cycle did not sample.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from monitor.errors import InputError
from monitor.intake.ingest import BATCH, OUTPUTS, parse_line
from monitor.records import BadLine, OutputRecord
from monitor.store import pull_queries
from monitor.store.pull_queries import FileIdentity, FilePosition
from monitor.store.tables import utcnow
from monitor.store.writes import insert_outputs


@dataclass
class PullSummary:
    files: int = 0
    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    bad_lines: list[tuple[str, BadLine]] = field(default_factory=list)
    rejects_files: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"pulled {self.lines} lines from {self.files} files: {self.stored} outputs stored, "
            f"{self.duplicates} duplicate, {self.rejected} rejected"
        )
        if self.rejects_files:
            text += " (written to " + ", ".join(str(p) for p in self.rejects_files) + ")"
        return text


def pull_jsonl(
    engine: Engine,
    directories: Sequence[str | Path],
    pattern: str = "*.jsonl",
    now: Callable[[], datetime] | None = None,
    rejects_dir: Path | None = None,
    prepare: Callable[[OutputRecord], OutputRecord] | None = None,
) -> PullSummary:
    """One pass over the directories: import every complete line written since the last pass."""
    clock = now or utcnow
    summary = PullSummary()
    for directory in directories:
        folder = Path(directory).resolve()
        source = f"jsonl:{folder}"
        with engine.connect() as conn:
            known = pull_queries.file_positions(conn, source)
        files = _files(folder, pattern, set(known))
        for identity, path in files:
            summary.files += 1
            _pull_file(
                engine, source, identity, path, known.get(identity), clock, summary, rejects_dir, prepare
            )
        gone = set(known) - {identity for identity, _ in files}
        if gone:
            with engine.begin() as conn:
                pull_queries.forget_files(conn, source, gone)
    return summary


def _files(folder: Path, pattern: str, known: set[FileIdentity]) -> list[tuple[FileIdentity, Path]]:
    """The files to read, oldest first: those matching the pattern, and known ones renamed away."""
    found: dict[FileIdentity, tuple[float, str, Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise InputError(f"cannot read the pull directory: {exc.strerror}", source=str(folder)) from None
    for entry in entries:
        if not entry.is_file(follow_symlinks=False) or ".rejects." in entry.name:
            continue
        stat = entry.stat(follow_symlinks=False)
        identity = (stat.st_dev, stat.st_ino)
        if fnmatch.fnmatch(entry.name, pattern) or identity in known:
            found[identity] = (stat.st_mtime, entry.name, Path(entry.path))
    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[1][1]))
    return [(identity, path) for identity, (_, _, path) in ordered]


def _pull_file(
    engine: Engine,
    source: str,
    identity: FileIdentity,
    path: Path,
    position: FilePosition | None,
    clock: Callable[[], datetime],
    summary: PullSummary,
    rejects_dir: Path | None,
    prepare: Callable[[OutputRecord], OutputRecord] | None,
) -> None:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return  # rotated away between listing and opening: found by its inode next pass
    with handle:
        size = os.fstat(handle.fileno()).st_size
        offset, number = (position.offset, position.lines) if position else (0, 0)
        if size < offset:  # truncated in place
            offset, number = 0, 0
        if size == offset and position is not None:
            return
        handle.seek(offset)
        batch: list[OutputRecord] = []
        rejects: list[BadLine] = []
        while True:
            raw = handle.readline()
            if not raw or not raw.endswith(b"\n"):
                break  # end, or a line still being written
            number += 1
            offset += len(raw)
            if raw.isspace():
                continue
            summary.lines += 1
            try:
                record = parse_line(raw, number, OUTPUTS.validate)
            except InputError as exc:
                text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
                rejects.append(BadLine(number, exc.field, exc.message, text))
                continue
            batch.append(prepare(record) if prepare else record)
            if len(batch) + len(rejects) >= BATCH:
                _commit(engine, source, identity, path, position, offset, number, batch, clock, summary)
                position = FilePosition(offset, number)
                _write_rejects(path, rejects, rejects_dir, summary)
                batch, rejects = [], []
        _commit(engine, source, identity, path, position, offset, number, batch, clock, summary)
        _write_rejects(path, rejects, rejects_dir, summary)


def _commit(
    engine: Engine,
    source: str,
    identity: FileIdentity,
    path: Path,
    position: FilePosition | None,
    offset: int,
    lines: int,
    batch: list[OutputRecord],
    clock: Callable[[], datetime],
    summary: PullSummary,
) -> None:
    """The batch and the position after it, in one transaction."""
    now = clock()
    with engine.begin() as conn:
        if batch:
            counts = insert_outputs(conn, batch, now)
            summary.stored += counts.stored
            summary.duplicates += counts.duplicates
        pull_queries.save_file_position(
            conn, source, identity, str(path), FilePosition(offset, lines), now, new=position is None
        )


def _write_rejects(path: Path, rejects: list[BadLine], directory: Path | None, summary: PullSummary) -> None:
    if not rejects:
        return
    folder = directory or path.parent
    target = folder / f"{path.name}.outputs.rejects.jsonl"
    with open(target, "a", encoding="utf-8") as handle:
        for bad in rejects:
            handle.write(
                json.dumps(
                    {"line": bad.line, "field": bad.field, "error": bad.message, "text": bad.text},
                    ensure_ascii=False,
                )
                + "\n"
            )
    summary.rejected += len(rejects)
    summary.bad_lines.extend((str(path), bad) for bad in rejects[: max(0, 50 - len(summary.bad_lines))])
    if target not in summary.rejects_files:
        summary.rejects_files.append(target)
