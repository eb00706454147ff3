"""Issue 15: Schemathesis, driven by the daemon's own `/openapi.json`, finds nothing.

A real `aiqm serve` on each store; Schemathesis's engine (what `schemathesis run` runs) with
every phase (examples, coverage, fuzzing, stateful) and every check, an admin token (the
`ignored_auth` check takes it away and expects a 401), a fixed seed and a bounded number of
examples, so a run stays within a minute or two on a busy two-core machine. Every failing check
and every error is reported with the operation, the check and a curl command to replay it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import schemathesis
import yaml
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished
from test_api_serve import daemon

SEED = 15
# Per operation and phase (the stateful phase: per scenario). At this seed 15 reach every
# operation with the same set of status codes as 25 did (measured on SQLite: the coverage phase,
# which sends the boundary and negative cases, is the same 506 requests at either number), in
# two thirds of the time; at 10 some operations no longer got their 404.
MAX_EXAMPLES = 15
ADMIN = "admin-token-of-the-schemathesis-test"

# The only answers the schema cannot promise: which requests the data stored makes valid.
# A label names an output that must be stored (CONTRACT section 2: otherwise the batch is a
# 422), and an override's `until` must be in the future; no JSON Schema can say either, so for
# these two operations a 422 to schema-valid data is the documented answer, not a finding.
# And an OTLP body's shape is OTLP's protobuf message, which JSON Schema cannot state (nor can a
# fuzzer write a valid protobuf from `format: binary`): a 400 naming what is wrong with the body
# is the documented answer to bytes that are not one.
REFERENCES: dict[str, list[str]] = {
    "POST /v1/labels": ["2xx", "401", "403", "404", "422"],
    "POST /v1/features/{feature}/override": ["2xx", "401", "403", "404", "422"],
    "POST /v1/traces": ["2xx", "400", "401", "403"],
    "POST /v1/logs": ["2xx", "400", "401", "403"],
}


def _config(folder: Path, store_url: str) -> Path:
    token = {"name": "admin", "role": "admin", "sha256": hashlib.sha256(ADMIN.encode()).hexdigest()}
    config = {
        "database_url": store_url,
        "tokens": [token],
        "features": {"support-reply": {"owner": "team@example.com"}},
    }
    path = folder / "aiqm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _settings(url: str) -> schemathesis.Config:
    operations = [
        {
            "include-name": name,
            "checks": {"positive_data_acceptance": {"expected-statuses": statuses}},
        }
        for name, statuses in REFERENCES.items()
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            "headers": {"Authorization": f"Bearer {ADMIN}"},
            "continue-on-failure": True,
            "cache": {"enabled": False},  # nothing written into the working tree
            "workers": 1,
            "request-timeout": 30,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {name: {"enabled": True} for name in ("examples", "coverage", "fuzzing", "stateful")},
            "checks": {"enabled": True},
            "operations": operations,
        }
    )


def _findings(url: str) -> tuple[list[str], dict[str, int]]:
    """What Schemathesis found (empty: nothing), and how many scenarios ran per phase."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_settings(url))
    found: list[str] = []
    ran: dict[str, int] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            ran[str(event.phase)] = ran.get(str(event.phase), 0) + 1
            if event.status in (Status.FAILURE, Status.ERROR):
                found.extend(_failures(event))
        elif isinstance(event, NonFatalError):
            found.append(f"error in {event.label}: {event.info.format()}")
        elif isinstance(event, FatalError):
            found.append(f"fatal: {event.exception!r}")
    return found, ran


def _failures(event: ScenarioFinished) -> list[str]:
    lines = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.status is Status.FAILURE and check.failure_info is not None:
                failure: Any = check.failure_info.failure
                lines.append(
                    f"{event.phase} {event.label}: {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}"
                )
    return lines or [f"{event.phase} {event.label}: {event.status}"]


def test_schemathesis_finds_nothing(store_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, store_url)
    with daemon(config, tmp_path / "daemon.log") as running:
        found, ran = _findings(running.url)
        assert not found, "\n\n".join(found[:20])
        assert {"examples", "coverage", "fuzzing", "stateful"} <= {p.lower() for p in ran}, ran
    text = running.text()
    assert running.process.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
