"""The review page with hostile text (HTML and SQL) in every field of a logged output, its id
included: every value is shown escaped, never as markup, on both stores (issue 7, "Bad input")."""

from __future__ import annotations

import html
import re
import warnings
from datetime import timedelta
from typing import Any

from review_data import CYCLE_AT, FEATURE, SCRIPT, SQL, Clock, app_for, mint_tokens, seed, services_for
from sqlalchemy import Engine

from monitor.records import validate_output
from monitor.store.writes import insert_outputs

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

HOSTILE_ID = f"{SCRIPT}{SQL}"
IMG = '"><img src=x onerror=alert(3)>'


def hostile_output() -> dict[str, Any]:
    ts = (CYCLE_AT - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    return {
        "id": HOSTILE_ID,
        "feature": FEATURE,
        "ts": ts,
        "input": {SCRIPT: [SQL, IMG]},
        "output": f"{IMG}{SCRIPT}",
        "model_version": IMG,
        "config_version": f"{SQL}{IMG}",
        "segment": {IMG: SCRIPT, "language": SQL},
        "signals": {IMG: 0.5, "confidence": 0.7},
        "user_action": "edited",
        "metadata": {"note": SCRIPT, IMG: SQL},
    }


def _hidden(text: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', text)
    assert found is not None, f"no hidden field {name!r}"
    return html.unescape(found.group(1))


def test_every_field_of_a_hostile_output_is_escaped_on_the_review_page(engine: Engine) -> None:
    clock = Clock(CYCLE_AT + timedelta(hours=2))
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(hostile_output())], clock())
    settings = seed(engine, clock)  # the cycle draws every output, the hostile one included
    tokens = mint_tokens(engine, clock())
    with TestClient(app_for(services_for(engine, settings, clock)), base_url="http://testserver") as client:
        login = client.get("/review/login")
        signed = client.post(
            "/review/login",
            data={"token": tokens.review, "csrf": _hidden(login.text, "csrf")},
            follow_redirects=False,
        )
        assert signed.status_code == 303
        queue = client.get(f"/review/{FEATURE}")
        page = client.get(f"/review/{FEATURE}", params={"item": HOSTILE_ID})
    assert queue.status_code == 200 and page.status_code == 200
    for text in (queue.text, page.text):
        assert SCRIPT not in text
        assert "alert(1)</script>" not in text
        assert "<img" not in text
        assert SQL not in text  # the quote is escaped as &#39;
        assert text.count("<script") == 1  # the page's own, with its nonce
    current = re.search(r'id="current" data-output-id="([^"]*)"', page.text)
    assert current is not None and html.unescape(current.group(1)) == HOSTILE_ID
    assert html.escape(SCRIPT, quote=False) in page.text or html.escape(SCRIPT) in page.text
