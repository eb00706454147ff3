"""Privacy: redaction of personal data, and retention of raw inputs and outputs.

Redaction (config `privacy.redact`) replaces e-mail addresses, phone numbers, payment card
numbers (only digit runs that pass the Luhn check), IBAN-like account numbers and every match
of the configured `privacy.patterns` with a placeholder (`[EMAIL]`, `[PHONE]`, `[CARD]`,
`[IBAN]`, `[REDACTED]`). It applies to a logged output's `input` and `output`: a string, or
every string leaf of a JSON value (keys are kept). With `redact_before: storage` (the default)
it runs on every ingest path (`aiqm ingest`, `POST /v1/outputs`) before anything is written;
with `redact_before: judges` the store keeps the raw text and only what is sent to a judge is
redacted.

Retention (config `privacy.retention_days`): raw inputs and outputs of outputs older than N
days (by their `ts`) are set to NULL; everything else about them stays (lengths, signals,
segments, samples, labels and their verdicts, cycles), so aggregates and history are intact.
`aiqm retention` runs it; the daemon runs it daily.

Unsampled text (config `privacy.unsampled_text: delete`): after each cycle, the raw input and
output of the outputs no cycle sampled, and no later cycle can sample, are set to NULL, so the
store keeps only the text a reviewer or a judge sees. Nothing else reads that text: drift
compares the kept lengths. This is how JSONL pull, which must copy a line's text before the log
file rotates away, ends up keeping only what it samples.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from monitor.records import OutputRecord
from monitor.store import text_queries

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
IBAN_RE = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD_RE = re.compile(r"\b(?:[0-9][ -]?){12,18}[0-9]\b")
PHONE_RE = re.compile(r"(?<![\w+(])(?:\+|\()?[0-9][0-9 ()./-]{6,}[0-9](?!\w)")
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15  # E.164
DATE_RE = re.compile(r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}")


CARD_DIGITS = (13, 19)  # payment card numbers are 13 to 19 digits long (ISO/IEC 7812)
LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, its two digits summed


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers do)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = LUHN_DOUBLED[value]
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[CARD]" if CARD_DIGITS[0] <= len(digits) <= CARD_DIGITS[1] and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if DATE_RE.fullmatch(text.strip()) is not None:
        return text
    digits = sum(c.isdigit() for c in text)
    return "[PHONE]" if MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS else text


class Redactor:
    """Replaces personal data in text and in JSON values' string leaves."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.extra = [re.compile(pattern) for pattern in patterns]

    def text(self, value: str) -> str:
        if "@" in value:
            value = EMAIL_RE.sub("[EMAIL]", value)
        if any(c.isdigit() for c in value):
            value = IBAN_RE.sub("[IBAN]", value)
            value = CARD_RE.sub(_card, value)
            value = PHONE_RE.sub(_phone, value)
        for pattern in self.extra:
            value = pattern.sub("[REDACTED]", value)
        return value

    def value(self, value: Any) -> Any:
        """A string redacted, or a JSON value with every string leaf redacted (keys kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [self.value(inner) for inner in value]
        return value

    def record(self, record: OutputRecord) -> OutputRecord:
        """The record with its input and output redacted."""
        if record.input is None and record.output is None:
            return record
        return dataclasses.replace(record, input=self.value(record.input), output=self.value(record.output))


def redactor_for(settings: Any) -> Redactor | None:
    """The redactor `privacy` asks for, or None when redaction is off."""
    privacy = settings.privacy
    return Redactor(privacy.patterns) if privacy.redact else None


def storage_redaction(settings: Any) -> Callable[[OutputRecord], OutputRecord] | None:
    """What ingest applies to each record before storing it (None: store as received)."""
    redactor = redactor_for(settings)
    if redactor is None or settings.privacy.redact_before != "storage":
        return None
    return redactor.record


def apply_retention(engine: Engine, days: float, now: datetime, chunk: int = 10_000) -> int:
    """Set the raw input and output of outputs older than `days` to NULL; returns how many.

    Works in chunks of `chunk` rows per transaction, so a large backlog never holds a long lock.
    """
    cutoff = now - timedelta(days=days)
    cleared = 0
    while True:
        with engine.begin() as conn:
            pks = text_queries.text_older_than(conn, cutoff, chunk)
            if not pks:
                return cleared
            text_queries.delete_text(conn, pks)
        cleared += len(pks)


def delete_unsampled_text(
    engine: Engine, feature: str, start: datetime, end: datetime, step: timedelta = timedelta(hours=1)
) -> int:
    """Set the raw input and output of `feature`'s outputs in [start, end) that no cycle sampled
    to NULL; returns how many. One transaction per `step` of time, so a busy week never holds a
    long lock, and a pass cut short is finished by the next one (it is idempotent).

    The few sampled outputs are read first and left out by primary key: an anti-join against
    `samples` would leave the plan to the table's statistics, and a stale estimate turns it
    into a nested loop over every sample for every output.
    """
    with engine.connect() as conn:
        sampled = text_queries.sampled_outputs_in_window(conn, feature, start, end)
    cleared = 0
    low = start
    while low < end:
        high = min(low + step, end)
        keep = [key.pk for key in sampled if low <= key.ts < high]
        with engine.begin() as conn:
            cleared += text_queries.delete_text_except(conn, feature, low, high, keep)
        low = high
    return cleared


class RetentionLoop:
    """The daemon's retention: `apply_retention` at start and then every `interval_seconds` (daily).

    A daemon thread; a failure is logged and retried at the next interval, never fatal.
    """

    def __init__(
        self,
        engine: Engine,
        days: float,
        clock: Callable[[], datetime],
        interval_seconds: float = 86_400.0,
    ) -> None:
        self.engine = engine
        self.days = days
        self.clock = clock
        self.interval = interval_seconds
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiqm-retention", daemon=True)

    @classmethod
    def start_for(cls, settings: Any, engine: Engine, clock: Callable[[], datetime]) -> RetentionLoop | None:
        """Started when `privacy.retention_days` is set, else None."""
        days = settings.privacy.retention_days
        if days is None:
            return None
        loop = cls(engine, days, clock)
        loop.start()
        return loop

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cleared = apply_retention(self.engine, self.days, self.clock())
                if cleared:
                    log.info(
                        "retention: raw text of %d outputs older than %g days deleted", cleared, self.days
                    )
            except Exception:
                log.exception("retention failed; retrying at the next interval")
            self.runs += 1
            self._stop.wait(self.interval)
