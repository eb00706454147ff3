"""The mode as an OpenFeature flag over OFREP on both stores: the answer carries key, value,
reason and variant; an unknown feature is FLAG_NOT_FOUND; bulk evaluation with its ETag; and
readiness: the store answers and the scheduler runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from api_support import FEATURE, NOW, Site, output, settings_for, site
from sqlalchemy import Engine

from monitor.records import validate_output
from monitor.store.writes import insert_outputs

FLAG = f"/ofrep/v1/evaluate/flags/{FEATURE}"


@pytest.fixture
def api(engine: Engine) -> Iterator[Site]:
    with site(engine) as served:
        yield served


def test_a_flag_is_the_feature_mode_with_the_protocols_fields(api: Site, engine: Engine) -> None:
    first = api.post(FLAG, "read", {"context": {"targetingKey": "user-1"}})
    assert first.status_code == 200
    assert first.json() == {
        "key": FEATURE,
        "value": "normal",
        "reason": "DEFAULT",
        "variant": "normal",
        "metadata": {"reason": "no outputs yet"},
    }
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(output(i)) for i in range(5)], NOW)
    api.services.runner.run(FEATURE, NOW - timedelta(minutes=30))
    api.clock.advance(seconds=api.services.settings.server.read_cache_seconds)  # the kept mode expires
    after_cycle = api.post(FLAG, "read").json()  # no body at all is fine too
    assert after_cycle["value"] == "normal" and after_cycle["reason"] == "TARGETING_MATCH"
    assert after_cycle["metadata"]["since"].endswith("Z")
    assert (
        api.post("/v1/features/support-reply/override", "admin", {"mode": "off", "reason": "x"}).status_code
        == 200
    )
    overridden = api.post(FLAG, "read", {"context": {}}).json()
    assert (
        overridden["value"] == "off" and overridden["variant"] == "off" and overridden["reason"] == "STATIC"
    )
    assert all(isinstance(v, str | bool | int | float) for v in overridden["metadata"].values())


def test_an_unknown_flag_is_flag_not_found(api: Site) -> None:
    answer = api.post("/ofrep/v1/evaluate/flags/no-such-feature", "read", {"context": {}})
    assert answer.status_code == 404
    body = answer.json()
    assert body["key"] == "no-such-feature" and body["errorCode"] == "FLAG_NOT_FOUND"
    assert body["errorDetails"]


def test_a_bad_evaluation_request_is_400(api: Site) -> None:
    not_json = api.http.post(FLAG, content=b"{", headers=api.auth("read"))
    assert not_json.status_code == 400 and not_json.json()["errorCode"] == "PARSE_ERROR"
    bad_context = api.post(FLAG, "read", {"context": ["a"]})
    assert bad_context.status_code == 400 and bad_context.json()["errorCode"] == "INVALID_CONTEXT"
    assert bad_context.json()["key"] == FEATURE


def test_bulk_evaluation_with_etag(api: Site, engine: Engine) -> None:
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(output(1, feature="summarizer"))], NOW)
    answer = api.post("/ofrep/v1/evaluate/flags", "read", {"context": {}})
    assert answer.status_code == 200
    flags = answer.json()["flags"]
    assert [f["key"] for f in flags] == ["summarizer", FEATURE]
    assert all({"key", "value", "reason", "variant"} <= set(f) for f in flags)
    etag = answer.headers["etag"]
    same = api.post(
        "/ofrep/v1/evaluate/flags",
        "read",
        {"context": {}},
        headers={**api.auth("read"), "If-None-Match": etag},
    )
    assert same.status_code == 304
    api.post("/v1/features/summarizer/override", "admin", {"mode": "off", "reason": "x"})
    changed = api.http.post("/ofrep/v1/evaluate/flags", headers={**api.auth("read"), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    configuration = api.get("/ofrep/v1/configuration", "read").json()
    assert configuration["capabilities"]["flagEvaluation"]["supportedTypes"] == ["string"]


def test_readiness_needs_the_store_and_a_running_scheduler(engine: Engine) -> None:
    with site(engine) as no_scheduler:
        answer = no_scheduler.http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "not ready",
            "store": "ok",
            "scheduler": "stopped",
            "leader": False,
        }
    with site(engine, settings_for(), scheduler=True, prefix="second-") as running:
        assert running.http.get("/readyz").json() == {
            "status": "ready",
            "store": "ok",
            "scheduler": "running",
            "leader": True,
        }
        assert running.services.scheduler is not None and running.services.scheduler.running
    assert not running.services.scheduler.running  # the app's shutdown stopped it
