"""`GET /metrics` over HTTP: open by default, or behind a token or a role; the text format that
`promtool check metrics` accepts; `aiqm_store_up 0` (never a 500) when the store is unreadable."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import httpx
from api_support import served, site
from metrics_history import FEATURE, build_history, make_settings
from missing_part import missing
from sqlalchemy import Engine

from monitor.daemon.app import build_services
from monitor.store.engine import make_engine


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing: apt-get install prometheus (.ci/run installs it)"
        missing(message)
    return found


def test_metrics_are_open_by_default_and_promtool_accepts_them(engine: Engine, tmp_path: Path) -> None:
    build_history(engine, tmp_path / "history", weeks=6)
    with site(engine, make_settings()) as served:
        response = served.get("/metrics", None)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert response.headers["cache-control"] == "no-store"
        body = response.text
    assert "\naiqm_store_up 1.0\n" in body
    assert f'aiqm_quality_pass_rate{{feature="{FEATURE}",scope="all"}}' in body
    assert "process_resident_memory_bytes" in body
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def test_a_configured_token_guards_the_metrics(engine: Engine) -> None:
    token = "scrape-me-please"
    settings = make_settings(server={"metrics_token_sha256": hashlib.sha256(token.encode()).hexdigest()})
    with site(engine, settings) as served:
        missing = served.get("/metrics", None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert served.get("/metrics", None, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert served.get("/metrics", "admin").status_code == 401  # the token, not any token
        right = served.get("/metrics", None, headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200 and "aiqm_store_up 1.0" in right.text


def test_a_role_may_scrape(engine: Engine) -> None:
    with site(engine, make_settings(server={"metrics_role": "read"})) as served:
        assert served.get("/metrics", None).status_code == 401
        assert served.get("/metrics", "ingest").status_code == 403
        assert served.get("/metrics", "read").status_code == 200
        assert served.get("/metrics", "admin").status_code == 200


def test_an_unreadable_store_answers_store_up_0(tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    services = build_services(make_settings(), engine=broken, scheduler=False)
    try:
        with served(services) as url:
            response = httpx.get(f"{url}/metrics", timeout=30)
    finally:
        broken.dispose()
    assert response.status_code == 200
    assert "\naiqm_store_up 0.0\n" in response.text
    assert "aiqm_feature_mode" not in response.text
