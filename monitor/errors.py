"""The project's errors: one root, and the kinds a user can act on."""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is wrong: names the file and the key."""


class InputError(MonitorError):
    """A record is wrong: names where it came from (file and line, or batch index) and the field."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None, field: str = "") -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.source
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        parts = [p for p in (where, f"field {self.field!r}" if self.field else "") if p]
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class NotFound(MonitorError, KeyError):
    """Something asked for by name or id does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
