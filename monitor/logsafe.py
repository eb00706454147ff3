"""No secret in the logs: a logging filter that redacts them from every record it sees.

What it hides, wherever it appears in a formatted message or a traceback:
- the password of a URL (`postgresql://user:SECRET@host/db` becomes `postgresql://user:***@host/db`);
- bearer credentials (`Bearer SECRET`) and `token=`, `key=`, `api_key=`, `secret=`, `password=`
  values (in query strings, say in the access log);
- the values of the environment variables that hold secrets: the LLM judges' `api_key_env`,
  the webhooks' `url_env`, and anything else passed to `Redactor.add`.

API tokens are never logged in the first place (only their hashes are stored); this filter is the
net under that rule, and under third-party messages (SQLAlchemy, httpx, uvicorn) the code does
not control.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Settings

__all__ = ["MASK", "Redactor", "install", "redact", "settings_secrets"]

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter literal values would mask ordinary words
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<secret>[^\s@/'\"]+)(?=@)")
_BEARER = re.compile(r"(?P<head>\b[Bb]earer\s+)(?P<secret>[A-Za-z0-9._~+/=\-]+)")
_PARAM = re.compile(
    r"(?P<head>\b(?:access_token|api[_-]?key|key|token|secret|password|passwd)=)(?P<secret>[^\s&'\"]+)",
    re.IGNORECASE,
)


class Redactor(logging.Filter):
    """Rewrites each record's message (and its traceback text) with the secrets masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these literal values too (ignoring ones too short to be secrets)."""
        self._secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)

    def add_env(self, names: Iterable[str]) -> None:
        """Mask the values of these environment variables."""
        self.add(os.environ.get(name, "") for name in names if name)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)  # formatters print this cached, cleaned copy
        return True


def redact(text: str) -> str:
    """`text` with URL passwords, bearer credentials and secret-looking parameters masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _BEARER.sub(lambda m: m.group("head") + MASK, text)
    return _PARAM.sub(lambda m: m.group("head") + MASK, text)


def install(handler: logging.Handler, secrets: Iterable[str] = (), env: Iterable[str] = ()) -> Redactor:
    """Put a `Redactor` on `handler` (replacing one installed before) and return it."""
    for old in [f for f in handler.filters if isinstance(f, Redactor)]:
        handler.removeFilter(old)
    redactor = Redactor(secrets)
    redactor.add_env(env)
    handler.addFilter(redactor)
    return redactor


def settings_secrets(settings: Settings) -> tuple[list[str], list[str]]:
    """The secrets a configuration names: (literal values, names of environment variables)."""
    literals: list[str] = []
    names: list[str] = [settings.server.session_secret_env]
    for hook in settings.webhooks:
        literals.append(hook.url)
        names.append(hook.url_env)
    for feature in settings.features.values():
        for judge in feature.judges:
            names.append(getattr(judge, "api_key_env", ""))
    return [s for s in literals if s], [n for n in names if n]
