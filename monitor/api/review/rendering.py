"""The review page's HTML: Jinja2 templates (every value escaped), their filters, and the
security headers every page carries."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from monitor.api.review.session import Caller, Refused
from monitor.api.review.signing import csrf_token

__all__ = ["Renderer", "day", "environment", "iso", "number", "preview", "secure", "show", "when"]

TEMPLATES = Path(__file__).parent / "templates"


def when(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%a} {utc.day} {utc:%b %Y, %H:%M} UTC"


def day(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%a} {utc.day} {utc:%b}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def show(value: Any) -> str:
    """An input, output or metadata value as text: a string as it is, JSON pretty-printed."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def preview(value: Any, chars: int = 90) -> str:
    text = " ".join(show(value).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True
    )
    env.filters.update(when=when, day=day, iso=iso, show=show, preview=preview, number=number)
    return env


def secure(response: Response, nonce: str) -> None:
    """Headers every page carries: a strict Content-Security-Policy (scripts and styles only with
    this response's nonce), no framing, no sniffing, no caching, no referrer."""
    headers: dict[str, str] = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    response.headers.update(headers)


class Renderer:
    """Renders the page's templates with what every page needs: the base path, a fresh CSP
    nonce, the signed-in reviewer and their CSRF token."""

    def __init__(self, secret: bytes, env: Environment | None = None) -> None:
        self.secret = secret
        self.env = env or environment()

    def page(
        self,
        base: str,
        template: str,
        context: Mapping[str, Any],
        who: Caller | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = self.env.get_template(template).render(
            base=base,
            nonce=nonce,
            principal=who.principal if who else None,
            csrf=csrf_token(self.secret, who.credential) if who else "",
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        secure(response, nonce)
        return response

    def refused(self, base: str, who: Caller | None, exc: Refused) -> HTMLResponse:
        context = {"status": exc.status_code, "message": exc.message}
        return self.page(base, "refused.html", context, who, exc.status_code)
