"""The review page's handlers called alone, without the app or HTTP: each gets its store,
settings, clock and renderer explicitly, and a bare request. On both stores."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from review_data import CYCLE_AT, FEATURE, SCRIPT, Clock, human_labels, mint_tokens, queue_ids, seed
from sqlalchemy import Engine
from starlette.requests import Request

from monitor.api.auth import SESSION_COOKIE, Principal
from monitor.api.review.pages import ReviewPages
from monitor.api.review.rendering import Renderer
from monitor.api.review.session import Caller
from monitor.api.review.sign_in import LOGIN_COOKIE, SignIn
from monitor.api.review.signing import csrf_token, login_token, rendered_stamp
from monitor.api.review.verdict import Verdicts
from monitor.daemon.tokens import TokenBook

SECRET = b"k" * 32
BASE = "/review"
CREDENTIAL = "the-callers-session-cookie"
RITA = Caller(Principal("rita reviewer", "review"), CREDENTIAL)


def request(path: str, query: str = "", cookies: dict[str, str] | None = None) -> Request:
    """A bare request, as the handlers see one."""
    cookie = "; ".join(f"{name}={value}" for name, value in (cookies or {}).items())
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("testserver", 80),
            "path": path,
            "root_path": "",
            "query_string": query.encode("ascii"),
            "headers": [(b"cookie", cookie.encode("ascii"))] if cookie else [],
        }
    )


@dataclass
class Parts:
    engine: Engine
    clock: Clock
    pages: ReviewPages
    verdicts: Verdicts
    sign_in: SignIn
    tokens: dict[str, str]


@pytest.fixture
def parts(engine: Engine) -> Parts:
    clock = Clock(CYCLE_AT + timedelta(hours=2))
    settings = seed(engine, clock)
    renderer = Renderer(SECRET)
    pages = ReviewPages(engine, settings, clock, renderer)
    minted = mint_tokens(engine, clock())
    return Parts(
        engine,
        clock,
        pages,
        Verdicts(engine, clock, pages),
        SignIn(TokenBook(settings, engine), renderer),
        {"review": minted.review, "read": minted.read},
    )


def text(response: object) -> str:
    body = getattr(response, "body", b"")
    assert isinstance(body, bytes)
    return body.decode("utf-8")


def test_the_index_sends_a_stranger_to_the_sign_in_and_lists_features_to_a_reviewer(parts: Parts) -> None:
    away = parts.pages.index(request(BASE), BASE, None)
    assert away.status_code == 303 and away.headers["location"] == "/review/login?next=%2Freview"
    page = parts.pages.index(request(BASE), BASE, RITA)
    assert page.status_code == 200
    assert f'href="/review/{FEATURE}"' in text(page) and "signed in as rita reviewer" in text(page)
    assert f'value="{csrf_token(SECRET, CREDENTIAL)}"' in text(page)  # the sign-out form's token


def test_the_queue_escapes_what_it_shows_and_refuses_what_it_cannot_show(parts: Parts) -> None:
    page = parts.pages.feature_queue(request(f"{BASE}/{FEATURE}"), FEATURE, BASE, RITA, item="out-0")
    assert page.status_code == 200
    assert SCRIPT not in text(page) and "&lt;script&gt;alert(1)&lt;/script&gt;" in text(page)
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["Content-Security-Policy"])
    assert nonce is not None and f'<script nonce="{nonce.group(1)}">' in text(page)
    missing = parts.pages.feature_queue(request(f"{BASE}/nope"), "nope", BASE, RITA)
    assert missing.status_code == 404 and "There is no feature named &#39;nope&#39;." in text(missing)
    bad_cycle = parts.pages.feature_queue(request(f"{BASE}/{FEATURE}"), FEATURE, BASE, RITA, cycle="monday")
    assert bad_cycle.status_code == 400


def test_a_verdict_is_stored_with_the_time_it_took_and_leads_to_the_next_item(parts: Parts) -> None:
    first, second = queue_ids(parts.engine)[:2]
    stamp = rendered_stamp(SECRET, FEATURE, first, parts.clock())
    parts.clock.advance(12)
    done = parts.verdicts.submit(
        request(f"{BASE}/{FEATURE}"),
        FEATURE,
        BASE,
        RITA,
        csrf=csrf_token(SECRET, CREDENTIAL),
        output_id=first,
        action="pass",
        rendered=stamp,
    )
    assert done.status_code == 303
    location = urlsplit(done.headers["location"])
    assert location.path == f"/review/{FEATURE}"
    assert parse_qs(location.query) == {
        "cycle": ["2026-03-02T06:00:00Z"],
        "saved": ["pass"],
        "item": [second],
    }
    stored = human_labels(parts.engine)[first]
    assert stored["source"] == "human:rita_reviewer" and stored["review_seconds"] == 12.0


def test_a_verdict_without_the_callers_csrf_token_or_a_reason_is_refused(parts: Parts) -> None:
    first = queue_ids(parts.engine)[0]
    forged = parts.verdicts.submit(
        request(f"{BASE}/{FEATURE}"),
        FEATURE,
        BASE,
        RITA,
        csrf=csrf_token(SECRET, "someone else"),
        action="pass",
    )
    assert forged.status_code == 403
    unreasoned = parts.verdicts.submit(
        request(f"{BASE}/{FEATURE}"),
        FEATURE,
        BASE,
        RITA,
        csrf=csrf_token(SECRET, CREDENTIAL),
        output_id=first,
        action="fail",
    )
    assert unreasoned.status_code == 422 and "A reason is required for marking it fail" in text(unreasoned)
    assert human_labels(parts.engine) == {}
    signed_out = parts.verdicts.submit(request(f"{BASE}/{FEATURE}"), FEATURE, BASE, None, action="pass")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/review/login?next=%2Freview%2Fsupport-bot"


def test_signing_in_needs_the_forms_cookie_and_a_review_token(parts: Parts) -> None:
    nonce = "the-pre-session-nonce"
    cookies = {LOGIN_COOKIE: nonce}
    csrf = login_token(SECRET, nonce)
    form = parts.sign_in.form(request(f"{BASE}/login"), BASE, next_url="/review/x")
    assert form.status_code == 200 and f"{LOGIN_COOKIE}=" in form.headers["set-cookie"]
    no_cookie = parts.sign_in.submit(request(f"{BASE}/login"), BASE, parts.tokens["review"], csrf)
    assert no_cookie.status_code == 403
    unknown = parts.sign_in.submit(request(f"{BASE}/login", cookies=cookies), BASE, "not-a-token", csrf)
    assert unknown.status_code == 401
    reader = parts.sign_in.submit(request(f"{BASE}/login", cookies=cookies), BASE, parts.tokens["read"], csrf)
    assert reader.status_code == 403 and "reviewing needs a review or admin token" in text(reader)
    signed_in = parts.sign_in.submit(
        request(f"{BASE}/login", cookies=cookies),
        BASE,
        parts.tokens["review"],
        csrf,
        next_url="//evil.example",
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == BASE
    set_cookies = signed_in.headers.getlist("set-cookie")
    assert any(c.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in c for c in set_cookies)
    assert any(c.startswith(f'{LOGIN_COOKIE}=""') for c in set_cookies)  # the nonce is spent


def test_signing_out_needs_the_csrf_token_of_a_signed_in_caller(parts: Parts) -> None:
    refused = parts.sign_in.sign_out(BASE, RITA, csrf="wrong")
    assert refused.status_code == 403
    out = parts.sign_in.sign_out(BASE, RITA, csrf=csrf_token(SECRET, CREDENTIAL))
    assert out.status_code == 303 and out.headers["location"] == "/review/login"
    assert out.headers["set-cookie"].startswith(f'{SESSION_COOKIE}=""')
    assert parts.sign_in.sign_out(BASE, None).status_code == 303  # a stale tab signs out too
