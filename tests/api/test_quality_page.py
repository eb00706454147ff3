"""The quality page over HTTP, on both stores: the sign-in for every role that may read, the
overview's figures as the cycles stored them, a feature's charts and trigger timeline, the
security headers, and what it refuses."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from quality_data import FEATURE, NOW, QUIET, TestClient, seed_history, services_for, sign_in
from review_data import mint_tokens
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.config import Settings
from monitor.reporting.status import collect_status
from monitor.store.engine import make_engine
from monitor.store.metric_queries import MetricsReader

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def seeded(
    module_store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[str, str], Engine]]:
    """The history and the tokens, stored once per backend: the pages only read them."""
    engine = make_engine(module_store_url)
    try:
        config = seed_history(engine, tmp_path_factory.mktemp("history"))
        minted = mint_tokens(engine, datetime.now(UTC))
        tokens = {
            "read": minted.read,
            "review": minted.review,
            "admin": minted.admin,
            "ingest": minted.ingest,
        }
        yield config, tokens, engine
    finally:
        engine.dispose()


@pytest.fixture
def site(
    seeded: tuple[Settings, dict[str, str], Engine],
) -> Iterator[tuple[TestClient, dict[str, str], Engine]]:
    """A new app and client per test (its own session secret and cookies) over the seeded store."""
    config, tokens, engine = seeded
    with TestClient(create_app(services_for(engine, config)), base_url="http://testserver") as client:
        yield client, tokens, engine


def test_signed_out_the_page_sends_to_its_sign_in_and_back(
    site: tuple[TestClient, dict[str, str], Engine],
) -> None:
    client, tokens, _ = site
    first = client.get(f"/quality/{FEATURE}", follow_redirects=False)
    assert (
        first.status_code == 303
        and first.headers["location"] == f"/quality/login?next=%2Fquality%2F{FEATURE}"
    )
    assert sign_in(client, tokens["read"], f"/quality/{FEATURE}") == 303
    page = client.get(f"/quality/{FEATURE}")
    assert page.status_code == 200 and f"<h1>{FEATURE} " in page.text


@pytest.mark.parametrize("role", ["read", "review", "admin"])
def test_every_role_that_may_read_signs_in(
    site: tuple[TestClient, dict[str, str], Engine], role: str
) -> None:
    client, tokens, _ = site
    assert sign_in(client, tokens[role]) == 303
    page = client.get("/quality")
    assert page.status_code == 200 and 'id="features"' in page.text
    # only a token that may review gets links into the review queue
    assert (f'href="/review/{FEATURE}"' in page.text) == (role != "read")


def test_an_ingest_token_and_an_unknown_one_are_refused(
    site: tuple[TestClient, dict[str, str], Engine],
) -> None:
    client, tokens, _ = site
    form = client.get("/quality/login")
    assert sign_in(client, tokens["ingest"]) == 403
    refused = client.post("/quality/login", data={"token": tokens["ingest"], "csrf": "x"})
    assert refused.status_code == 403 and "expired" in refused.text
    assert sign_in(client, "not-a-token") == 401
    assert client.get("/quality", follow_redirects=False).status_code == 303
    assert "<strong>read</strong>" in form.text  # the form names the roles it admits
    bearer = client.get("/quality", headers={"Authorization": f"Bearer {tokens['ingest']}"})
    assert bearer.status_code == 403


def test_the_overview_states_what_the_cycles_stored(site: tuple[TestClient, dict[str, str], Engine]) -> None:
    client, tokens, engine = site
    page = client.get("/quality", headers={"Authorization": f"Bearer {tokens['read']}"})
    assert page.status_code == 200
    status = collect_status(engine, client.app.state.services.settings, NOW)["features"][FEATURE]  # type: ignore[attr-defined]
    row = re.search(rf'<tr data-feature="{FEATURE}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = row.group(1)
    last = status["last_cycle"]
    assert f"mode-{status['mode']}" in cells and status["mode"] == "review"
    with engine.connect() as conn:
        data = MetricsReader(engine.dialect.name).read(conn, NOW)
    measured = data.measured[FEATURE]
    assert f"{100 * measured.pass_rate:.1f}%" in cells
    assert f"[{100 * measured.pass_rate_low:.1f}%, {100 * measured.pass_rate_high:.1f}%]" in cells
    baseline = status["baseline"]
    assert f"{100 * baseline['pass_rate']:.1f}%" in cells
    assert (
        f"{100 * (baseline['pass_rate'] - 0.05):.1f}% · {100 * (baseline['pass_rate'] - 0.15):.1f}%" in cells
    )
    firing = {t["trigger"] for t in status["triggers"] if t["state"] == "firing" and t["scope"] == "all"}
    assert {"retrain", "fallback"} <= firing
    for trigger in firing:
        assert f'<div class="firing">{trigger}' in cells
    review = data.review[FEATURE]
    assert review.backlog > 0 and f"{review.backlog} of {review.drawn} left" in cells
    assert f"{status['labels']['human']} · {status['labels']['judge']}" in cells
    assert "short: " in cells and "pairs" in cells
    assert last["at"][:10] == "2026-03-02"
    quiet = re.search(rf'<tr data-feature="{QUIET}">(.*?)</tr>', page.text, re.S)
    assert quiet is not None and "none yet" in quiet.group(1) and "no baseline yet" in quiet.group(1)


def test_a_feature_page_serves_the_reports_charts_and_the_trigger_timeline(
    site: tuple[TestClient, dict[str, str], Engine],
) -> None:
    client, tokens, _ = site
    page = client.get(f"/quality/{FEATURE}", headers={"Authorization": f"Bearer {tokens['read']}"})
    assert page.status_code == 200
    charts = re.findall(
        r'<img class="chart" data-chart="([^"]+)" alt="[^"]*" src="data:image/png;base64,([^"]+)">', page.text
    )
    assert [name for name, _ in charts] == ["pass rate over time", "per segment", "drift", "trigger timeline"]
    for _, data in charts:
        assert base64.b64decode(data).startswith(PNG)
    timeline = re.search(r'<div class="card" id="timeline">(.*?)</div>', page.text, re.S)
    assert timeline is not None
    assert "fallback" in timeline.group(1) and "→ firing" in timeline.group(1)
    assert 'id="spend"' in page.text and "short" in page.text  # the rule judge's calls per cycle
    assert 'id="costs"' in page.text and 'id="segments"' in page.text


def test_the_pages_carry_the_review_pages_security_headers(
    site: tuple[TestClient, dict[str, str], Engine],
) -> None:
    client, tokens, _ = site
    assert sign_in(client, tokens["read"]) == 303
    for path in ("/quality", f"/quality/{FEATURE}", "/quality/login", "/quality/no-such-feature"):
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        assert (
            "default-src 'none'" in csp and "img-src 'self' data:" in csp and "frame-ancestors 'none'" in csp
        )
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None
        assert all(
            f'nonce="{nonce[1]}"' in tag for tag in re.findall(r"<(?:style|script)[^>]*>", answer.text)
        )
    missing = client.get("/quality/no-such-feature")
    assert missing.status_code == 404 and "no feature named" in missing.text


def test_signing_out_needs_the_csrf_token(site: tuple[TestClient, dict[str, str], Engine]) -> None:
    client, tokens, _ = site
    assert sign_in(client, tokens["read"]) == 303
    page = client.get("/quality")
    refused = client.post("/quality/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/quality", follow_redirects=False).status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    out = client.post("/quality/logout", data={"csrf": csrf[1]}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/quality/login"
    assert client.get("/quality", follow_redirects=False).status_code == 303
