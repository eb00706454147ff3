"""Who may do what over HTTP: every route with no token, a wrong token, each role; a config token
works; a minted token works at once and a revoked one is refused; the review session cookie
signed, HttpOnly and SameSite=Strict, refused when tampered with or expired. (The tokens
themselves, hashed, minted and revoked: tests/test_tokens.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from api_support import FEATURE, NOW, Site, mint, output, settings_for, site
from fastapi import Response
from sqlalchemy import Engine
from starlette.requests import Request

from monitor.api.auth import SESSION_COOKIE, open_session, read_session, session_value
from monitor.config import TokenSettings
from monitor.daemon.tokens import Principal, hash_token, revoke_token


@pytest.fixture
def api(engine: Engine) -> Iterator[Site]:
    with site(engine) as served:
        yield served


# (method, path, body, the roles allowed besides admin)
ROUTES = [
    ("POST", "/v1/outputs", [], {"ingest"}),
    ("POST", "/v1/labels", [], {"review"}),
    ("GET", f"/v1/features/{FEATURE}/status", None, {"read"}),
    ("GET", "/v1/features", None, {"read"}),
    ("POST", f"/v1/features/{FEATURE}/override", {"mode": None}, set()),
    ("DELETE", f"/v1/features/{FEATURE}/override", None, set()),
    ("POST", f"/ofrep/v1/evaluate/flags/{FEATURE}", {"context": {}}, {"read"}),
    ("POST", "/ofrep/v1/evaluate/flags", {"context": {}}, {"read"}),
    ("GET", "/ofrep/v1/configuration", None, {"read"}),
]


def test_every_route_asks_for_its_role(api: Site) -> None:
    for method, path, body, allowed in ROUTES:
        kwargs = {} if body is None else {"json": body}
        missing = api.http.request(method, path, **kwargs)
        assert missing.status_code == 401, (path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = api.http.request(method, path, headers={"Authorization": "Bearer not-a-token"}, **kwargs)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        basic = api.http.request(method, path, headers={"Authorization": "Basic YTpi"}, **kwargs)
        assert basic.status_code == 401
        for role in ("ingest", "review", "read", "admin"):
            answer = api.http.request(method, path, headers=api.auth(role), **kwargs)
            if role == "admin" or role in allowed:
                assert answer.status_code == 200, (path, role, answer.text)
            else:
                assert answer.status_code == 403, (path, role, answer.text)
                assert "role" in answer.json()["detail"]


def test_health_and_schema_are_open(api: Site) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    assert api.http.get("/readyz").status_code in (200, 503)
    schema = api.http.get("/openapi.json").json()
    paths = schema["paths"]
    for route in (
        "/v1/outputs",
        "/v1/labels",
        "/v1/features/{feature}/status",
        "/v1/features/{feature}/override",
    ):
        assert route in paths
    assert "/ofrep/v1/evaluate/flags/{key}" in paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    body = paths["/v1/outputs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"


def test_a_config_token_works_over_http(engine: Engine) -> None:
    token = "config-ingest-token-0123456789"
    settings = settings_for().model_copy(
        update={"tokens": (TokenSettings(name="app", role="ingest", sha256=hash_token(token)),)}
    )
    with site(engine, settings) as served:
        stored = served.http.post(
            "/v1/outputs", json=[output(1)], headers={"Authorization": f"Bearer {token}"}
        )
        assert stored.status_code == 200 and stored.json()["stored"] == 1


def _request_with(cookie: str | None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())]
    return Request({"type": "http", "headers": headers, "method": "GET", "path": "/"})


def test_the_session_cookie_is_signed_strict_and_expires() -> None:
    secret = b"s" * 32
    response = Response()
    open_session(response, Principal("ana", "review"), secret, 600, now=1_000_000.0)
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=strict" in header and "Max-Age=600" in header
    value = SimpleCookie(header)[SESSION_COOKIE].value
    assert read_session(_request_with(value), secret, now=1_000_001.0) == Principal("ana", "review")
    assert read_session(_request_with(value), secret, now=1_000_600.0) is None  # expired
    assert read_session(_request_with(value), b"other" * 8, now=1_000_001.0) is None
    forged = session_value(Principal("ana", "admin"), b"guess" * 8, 2_000_000.0)
    assert read_session(_request_with(forged), secret, now=1_000_001.0) is None
    payload, signature = value.split(".")
    assert read_session(_request_with(payload + "." + _tampered(signature)), secret, now=1.0) is None
    for junk in (None, "", "a.b.c", "###.###", "x" * 5000):
        assert read_session(_request_with(junk), secret) is None


def _tampered(value: str) -> str:
    """`value` with its last hex digit changed (always a different digit, never a no-op)."""
    return value[:-1] + ("1" if value[-1] == "0" else "0")


def test_a_session_cookie_authenticates_api_calls(api: Site) -> None:
    value = session_value(Principal("ana", "read"), api.services.session_secret, 4_000_000_000)
    api.http.cookies.set(SESSION_COOKIE, value)
    try:
        assert api.get(f"/v1/features/{FEATURE}/status", None).status_code == 200
        assert api.post("/v1/outputs", None, []).status_code == 403
        api.http.cookies.set(SESSION_COOKIE, _tampered(value))
        assert api.get(f"/v1/features/{FEATURE}/status", None).status_code == 401
    finally:
        api.http.cookies.clear()


def test_a_token_minted_while_serving_works_at_once(api: Site, engine: Engine) -> None:
    later = mint(engine, prefix="later-")
    bearer = {"Authorization": f"Bearer {later['read']}"}
    # The stored tokens were read (and kept) for the site's own tokens before this one existed.
    assert api.get(f"/v1/features/{FEATURE}/status", "read").status_code == 200
    assert api.http.get(f"/v1/features/{FEATURE}/status", headers=bearer).status_code == 200


def test_a_revoked_token_is_refused_once_the_kept_tokens_expire(api: Site, engine: Engine) -> None:
    later = mint(engine, prefix="later-")
    bearer = {"Authorization": f"Bearer {later['read']}"}
    assert api.http.get(f"/v1/features/{FEATURE}/status", headers=bearer).status_code == 200
    revoke_token(engine, "later-read-token", NOW)
    api.clock.advance(seconds=api.services.settings.server.read_cache_seconds)
    assert api.http.get(f"/v1/features/{FEATURE}/status", headers=bearer).status_code == 401


def test_without_the_read_cache_a_revoked_token_is_refused_at_once(engine: Engine) -> None:
    with site(engine, settings_for(read_cache_seconds=0), prefix="nocache-") as api:
        later = mint(engine, prefix="later-")
        bearer = {"Authorization": f"Bearer {later['read']}"}
        assert api.http.get(f"/v1/features/{FEATURE}/status", headers=bearer).status_code == 200
        revoke_token(engine, "later-read-token", NOW)
        assert api.http.get(f"/v1/features/{FEATURE}/status", headers=bearer).status_code == 401
