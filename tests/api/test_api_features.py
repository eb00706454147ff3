"""The app's side on both stores: a feature's status (mode, triggers, reason, since), 404 for
unknown features, and the override (the off switch): it wins at once, the cycle keeps it, it
ends by `mode: null`, by DELETE, or when its `until` passes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from api_support import FEATURE, NOW, Site, output, site
from sqlalchemy import Engine, select

from monitor.records import validate_output
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.tables import mode_overrides
from monitor.store.writes import ensure_feature, insert_outputs

STATUS = f"/v1/features/{FEATURE}/status"
OVERRIDE = f"/v1/features/{FEATURE}/override"


@pytest.fixture
def api(engine: Engine) -> Iterator[Site]:
    with site(engine) as served:
        yield served


def fire_fallback(engine: Engine) -> None:
    """What a cycle that fires `fallback` leaves in the store."""
    at = NOW - timedelta(minutes=30)
    with engine.begin() as conn:
        ensure_feature(conn, FEATURE, at)
        q.save_trigger_states(
            conn,
            FEATURE,
            [
                {
                    "trigger": trigger,
                    "scope": scope,
                    "state": state,
                    "since": at,
                    "updated_at": at,
                    "reason": f"{trigger} says so",
                    "evidence": {},
                    "detector": {},
                }
                for trigger, scope, state in (
                    ("fallback", "all", "firing"),
                    ("retrain", "segment:language=de", "pending"),
                    ("retrain", "all", "firing"),
                    ("drift", "all", "ok"),
                )
            ],
        )
        q.set_feature_mode(conn, FEATURE, "review", "fallback: fallback says so", at)


def test_status_of_a_configured_feature_without_outputs(api: Site) -> None:
    answer = api.get(STATUS, "read")
    assert answer.status_code == 200
    assert answer.json() == {
        "feature": FEATURE,
        "mode": "normal",
        "triggers": [],
        "reason": "no outputs yet",
        "since": None,
    }


def test_an_unknown_feature_is_404(api: Site) -> None:
    for name in ("nothing-here", "bad name", "x" * 65):
        answer = api.get(f"/v1/features/{name}/status", "read")
        assert answer.status_code == 404, name
        assert "no feature" in answer.json()["detail"]
    refused = api.post("/v1/features/nothing-here/override", "admin", {"mode": "off", "reason": "x"})
    assert refused.status_code == 404


def test_status_lists_pending_and_firing_triggers(api: Site, engine: Engine) -> None:
    fire_fallback(engine)
    body = api.get(STATUS, "read").json()
    assert body["mode"] == "review" and body["reason"] == "fallback: fallback says so"
    assert body["since"] == "2026-03-02T06:00:00Z"
    assert [(t["trigger"], t["scope"], t["state"]) for t in body["triggers"]] == [
        ("fallback", "all", "firing"),
        ("retrain", "all", "firing"),
        ("retrain", "segment:language=de", "pending"),
    ]
    assert all(t["reason"] and t["since"] == "2026-03-02T06:00:00Z" for t in body["triggers"])
    listed = api.get("/v1/features", "read").json()["features"]
    assert [item["feature"] for item in listed] == [FEATURE]
    assert listed[0] == body


def test_an_override_wins_at_once_and_clearing_hands_back_to_the_triggers(api: Site, engine: Engine) -> None:
    fire_fallback(engine)
    set_off = api.post(OVERRIDE, "admin", {"mode": "off", "reason": "incident 42"})
    assert set_off.status_code == 200
    assert set_off.json()["mode"] == "off" and set_off.json()["reason"] == "manual override: incident 42"
    assert api.get(STATUS, "read").json()["mode"] == "off"
    with engine.connect() as conn:
        feature = q.feature_row(conn, FEATURE)
        stored = conn.execute(select(mode_overrides)).mappings().one()
    assert feature is not None and feature["mode"] == "off"
    assert stored["set_by"] == "admin-token" and stored["until"] is None
    api.clock.advance(minutes=5)
    cleared = api.post(OVERRIDE, "admin", {"mode": None})
    assert cleared.status_code == 200 and cleared.json()["mode"] == "review"  # fallback still fires
    assert api.get(STATUS, "read").json()["mode"] == "review"
    assert (
        api.post(OVERRIDE, "admin", {"mode": "normal", "reason": "handled by hand"}).json()["mode"]
        == "normal"
    )
    deleted = api.http.delete(OVERRIDE, headers=api.auth("admin"))
    assert deleted.status_code == 200 and deleted.json()["mode"] == "review"
    assert api.http.delete(OVERRIDE, headers=api.auth("admin")).status_code == 200  # nothing to end: fine


def test_an_override_with_until_ends_by_itself(api: Site) -> None:
    until = (NOW + timedelta(hours=2)).isoformat()
    answer = api.post(OVERRIDE, "admin", {"mode": "fallback", "reason": "deploy window", "until": until})
    assert answer.json()["mode"] == "fallback"
    api.clock.advance(hours=1)
    assert api.get(STATUS, "read").json()["mode"] == "fallback"
    api.clock.advance(hours=1, seconds=1)
    body = api.get(STATUS, "read").json()
    assert body["mode"] == "normal" and body["reason"] == "the manual override has ended"
    assert body["since"] == "2026-03-02T08:30:00Z"


def test_an_ended_override_hands_back_to_a_firing_fallback(api: Site, engine: Engine) -> None:
    fire_fallback(engine)
    until = NOW + timedelta(hours=1)
    api.post(OVERRIDE, "admin", {"mode": "off", "reason": "deploy window", "until": until.isoformat()})
    with engine.connect() as conn:
        stored = fq.stored_mode(conn, FEATURE)
    assert stored is not None and stored.by_override and stored.mode == "off"  # a fact, not a prefix
    api.clock.advance(hours=1, seconds=1)
    body = api.get(STATUS, "read").json()
    assert (body["mode"], body["reason"]) == ("review", "fallback: fallback says so")
    assert body["since"] == until.isoformat().replace("+00:00", "Z")
    flag = api.post(f"/ofrep/v1/evaluate/flags/{FEATURE}", "read").json()
    assert flag["value"] == "review" and flag["reason"] == "DEFAULT"  # no cycle has finished
    api.http.delete(OVERRIDE, headers=api.auth("admin"))
    with engine.connect() as conn:
        stored = fq.stored_mode(conn, FEATURE)
    assert stored is not None and not stored.by_override and stored.mode == "review"


def test_a_bad_override_is_422_with_the_field(api: Site) -> None:
    cases = [
        ({"mode": "paused", "reason": "x"}, "mode"),
        ({"mode": "off"}, "reason"),
        ({"mode": "off", "reason": " "}, "reason"),
        ({"mode": "off", "reason": "x", "until": (NOW - timedelta(minutes=1)).isoformat()}, "until"),
        ({"mode": "off", "reason": "x", "until": "2030-01-01T00:00:00"}, "until"),
        ({"mode": "off", "reason": "x", "until": "soon"}, "until"),
        ({"mode": "off", "reason": "x", "colour": "red"}, "colour"),
        ({"reason": "x"}, "mode"),
    ]
    for body, field in cases:
        answer = api.post(OVERRIDE, "admin", body)
        assert answer.status_code == 422, body
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.json())
    not_json = api.http.post(OVERRIDE, content=b"mode=off", headers=api.auth("admin"))
    assert not_json.status_code == 422
    assert api.get(STATUS, "read").json()["mode"] == "normal"


def test_the_cycle_keeps_an_override(api: Site, engine: Engine) -> None:
    with engine.begin() as conn:
        insert_outputs(conn, [validate_output(output(i)) for i in range(20)], NOW)
    assert api.post(OVERRIDE, "admin", {"mode": "off", "reason": "legal review"}).status_code == 200
    outcome = api.services.runner.run(FEATURE, NOW - timedelta(minutes=30) + timedelta(days=7))
    assert outcome.mode == "off"
    body = api.get(STATUS, "read").json()
    assert body["mode"] == "off" and body["reason"] == "manual override: legal review"
