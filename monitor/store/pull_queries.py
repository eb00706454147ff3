"""Where pull mode stands: a JSONL file's position (`pull_positions`) and a source table's
watermark (`pull_watermarks`), each saved in the transaction that stores what was read up to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from monitor.store.tables import pull_positions, pull_watermarks

FileIdentity = tuple[int, int]
"""A file as the filesystem knows it whatever its name: (device, inode)."""


@dataclass(frozen=True)
class FilePosition:
    """How far a file was read: the byte offset after the last stored line, and its line count."""

    offset: int
    lines: int


@dataclass(frozen=True)
class Watermark:
    """The last row copied from a source table: its cursor value (as `pull_sql` encodes it) and id."""

    cursor: str
    last_id: str


def file_positions(conn: Connection, source: str) -> dict[FileIdentity, FilePosition]:
    """Every file of the source (a directory) read so far, and how far."""
    query = select(pull_positions).where(pull_positions.c.source == source)
    return {
        (int(row.device), int(row.inode)): FilePosition(int(row.offset), int(row.lines))
        for row in conn.execute(query)
    }


def forget_files(conn: Connection, source: str, identities: Iterable[FileIdentity]) -> None:
    """Drop the positions of files that are gone."""
    for device, inode in identities:
        conn.execute(
            delete(pull_positions).where(
                pull_positions.c.source == source,
                pull_positions.c.device == device,
                pull_positions.c.inode == inode,
            )
        )


def save_file_position(
    conn: Connection,
    source: str,
    identity: FileIdentity,
    path: str,
    position: FilePosition,
    now: datetime,
    *,
    new: bool,
) -> None:
    """Record how far the file was read; `new`: the file has no position yet."""
    values = {"offset": position.offset, "lines": position.lines, "path": path, "updated_at": now}
    device, inode = identity
    if new:
        conn.execute(insert(pull_positions).values(source=source, device=device, inode=inode, **values))
        return
    conn.execute(
        update(pull_positions)
        .where(
            pull_positions.c.source == source,
            pull_positions.c.device == device,
            pull_positions.c.inode == inode,
        )
        .values(**values)
    )


def watermark(conn: Connection, source: str) -> Watermark | None:
    """The source table's watermark, or None before its first copied batch."""
    row = conn.execute(select(pull_watermarks).where(pull_watermarks.c.source == source)).first()
    return Watermark(row.cursor, row.last_id) if row else None


def save_watermark(conn: Connection, source: str, mark: Watermark, now: datetime, *, new: bool) -> None:
    """Record the source table's watermark; `new`: it has none yet."""
    values = {"cursor": mark.cursor, "last_id": mark.last_id, "updated_at": now}
    if new:
        conn.execute(insert(pull_watermarks).values(source=source, **values))
    else:
        conn.execute(update(pull_watermarks).where(pull_watermarks.c.source == source).values(**values))
