"""No secret in the logs: the redacting filter, and the captured log of a real `aiqm serve`
(startup, requests with good and bad credentials, a token in a query string, errors) grepped for
every token, the store's password and an LLM judge's key."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml
from sqlalchemy.engine import make_url

from monitor.logsafe import MASK, Redactor, redact

if TYPE_CHECKING:
    from conftest import CliRunner

DB_PASSWORD = "Hunter2-db-pass"
LLM_KEY = "sk-test-llm-key-0123456789"
QUERY_SECRET = "query-secret-98765"


def test_urls_bearers_parameters_and_named_values_are_masked() -> None:
    assert (
        redact("postgresql+psycopg://app:pa55w0rd@db:5432/x") == f"postgresql+psycopg://app:{MASK}@db:5432/x"
    )
    assert redact("sqlite:///tmp/x.sqlite3") == "sqlite:///tmp/x.sqlite3"
    assert redact("Authorization: Bearer abc.DEF-123_x") == f"Authorization: Bearer {MASK}"
    assert redact('"GET /review?token=abc123&x=1 HTTP/1.1"') == f'"GET /review?token={MASK}&x=1 HTTP/1.1"'
    assert redact("https://x/v1?api_key=zzz") == f"https://x/v1?api_key={MASK}"
    redactor = Redactor([LLM_KEY])
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "calling with %s", (LLM_KEY,), None)
    try:
        raise RuntimeError(f"refused key {LLM_KEY} at postgresql://u:{DB_PASSWORD}@h/d")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert redactor.filter(record)
    text = logging.Formatter().format(record)
    assert LLM_KEY not in text and DB_PASSWORD not in text and "RuntimeError" in text and MASK in text


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    env.update(extra)
    return env


def test_a_served_daemon_logs_no_secret(aiqm: CliRunner, store_url: str, tmp_path: Path) -> None:
    url = store_url
    if url.startswith("postgresql"):  # trust authentication: the password is sent, and ignored
        url = make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    judge = {
        "kind": "llm",
        "model": "m",
        "rubric": "r",
        "api_key_env": "TEST_LLM_KEY",
        "base_url": "http://127.0.0.1:9",
    }
    config = tmp_path / "aiqm.yaml"
    settings = {"database_url": url, "features": {"replies": {"owner": "o@example.com", "judges": [judge]}}}
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    tokens = {}
    for role in ("ingest", "review", "read", "admin"):
        made = aiqm("token", "create", "--role", role, "--name", role, "--config", config)
        assert made.code == 0, made.err
        tokens[role] = made.out.strip()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=_environment({"TEST_LLM_KEY": LLM_KEY}),
        )
    try:
        deadline = time.monotonic() + 60
        base = ""
        while not base:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            base = next(
                (
                    line.split("serving on ", 1)[1].split()[0]
                    for line in log.read_text().splitlines()
                    if "serving on http://" in line
                ),
                "",
            )
            time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=30) as http:
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            for role, value in tokens.items():
                http.get("/v1/features/replies/status", headers={"Authorization": f"Bearer {value}"})
                http.get(f"/review?token={value}")
                http.post("/v1/outputs", json=[{"bad": role}], headers={"Authorization": f"Bearer {value}"})
            http.get("/v1/features", headers={"Authorization": f"Bearer {QUERY_SECRET}"})
            http.get(f"/review?token={QUERY_SECRET}")
            http.get(f"/metrics?api_key={QUERY_SECRET}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "serving on" in text and "GET /review?token=" in text  # the access log is there
    for secret in [*tokens.values(), DB_PASSWORD, LLM_KEY, QUERY_SECRET]:
        assert secret not in text, (secret, text)
    failed = aiqm(
        "status",
        "--config",
        config,
        env={"AIQM_DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@127.0.0.1:1/none"},
    )
    assert failed.code != 0 and DB_PASSWORD not in failed.err + failed.out and "***" in failed.err
