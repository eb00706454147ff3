"""`POST /v1/outputs` and `POST /v1/labels` on both stores: a batch is stored whole or not at all;
422 lists every bad record by index and field; limits on body size and batch size are 413; a
batch sent again stores nothing new."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_support import FEATURE, Site, label, output, site
from sqlalchemy import Engine, func, select

from monitor.store.tables import features, labels, outputs


@pytest.fixture
def api(engine: Engine) -> Iterator[Site]:
    with site(engine) as served:
        yield served


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_good_batch_is_stored_and_sending_it_again_stores_nothing(api: Site, engine: Engine) -> None:
    batch = [output(i, segment={"language": "de"}, signals={"confidence": 0.5}) for i in range(5)]
    first = api.post("/v1/outputs", "ingest", batch)
    assert first.status_code == 200
    assert first.json() == {"received": 5, "stored": 5, "duplicates": 0}
    again = api.post("/v1/outputs", "ingest", batch)
    assert again.json() == {"received": 5, "stored": 0, "duplicates": 5}
    assert count(engine, outputs) == 5
    with engine.connect() as conn:
        row = conn.execute(select(features).where(features.c.name == FEATURE)).mappings().one()
    assert row["outputs_total"] == 5 and row["mode"] == "normal"
    assert api.post("/v1/outputs", "ingest", []).json() == {"received": 0, "stored": 0, "duplicates": 0}


def test_every_bad_record_is_listed_and_nothing_is_stored(api: Site, engine: Engine) -> None:
    batch = [
        output(0),
        output(1, ts="yesterday"),
        output(2),
        {**output(3), "tokens": 12},  # unknown field
        {key: value for key, value in output(4).items() if key != "id"},
        output(5, feature="no spaces allowed"),
        output(6, user_action="liked"),
        "not an object",
    ]
    answer = api.post("/v1/outputs", "ingest", batch)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "ts"),
        (3, "tokens"),
        (4, "id"),
        (5, "feature"),
        (6, "user_action"),
        (7, ""),
    ]
    assert all(e["message"] for e in errors)
    assert count(engine, outputs) == 0 and count(engine, features) == 0


def test_labels_need_their_output_and_a_bad_batch_stores_none(api: Site, engine: Engine) -> None:
    assert api.post("/v1/outputs", "ingest", [output(i) for i in range(3)]).status_code == 200
    batch = [
        label(0),
        label(9),  # no such output
        label(1, verdict="maybe"),
        label(2, "fail", reason="wrong refund amount"),
        {**label(1), "feature": "other-feature"},  # the output is in another feature
    ]
    answer = api.post("/v1/labels", "review", batch)
    assert answer.status_code == 422
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [
        (1, "output_id"),
        (2, "verdict"),
        (4, "output_id"),
    ]
    assert count(engine, labels) == 0
    good = [label(0), label(1, "fail", reason="rude"), label(2, "unsure", reason="?")]
    stored = api.post("/v1/labels", "review", good)
    assert stored.json() == {"received": 3, "stored": 3, "duplicates": 0, "replaced": 0}
    again = api.post("/v1/labels", "review", [*good[:2], label(2, "pass")])
    assert again.json() == {"received": 3, "stored": 0, "duplicates": 2, "replaced": 1}
    with engine.connect() as conn:
        verdicts = dict(conn.execute(select(labels.c.output_id, labels.c.verdict)).all())
    assert verdicts == {"out-0": "pass", "out-1": "fail", "out-2": "pass"}


def test_the_body_must_be_a_json_array(api: Site) -> None:
    for body in (b"{not json", b'{"id": "x"}', b'"text"', b""):
        answer = api.http.post("/v1/outputs", content=body, headers=api.auth("ingest"))
        assert answer.status_code == 422, body
        (error,) = answer.json()["errors"]
        assert error["index"] is None and error["message"]


def test_limits_on_body_and_batch_size(api: Site, engine: Engine) -> None:
    limit = api.services.settings.server.max_batch
    too_many = api.post("/v1/outputs", "ingest", [output(i) for i in range(limit + 1)])
    assert too_many.status_code == 413 and "at most" in too_many.json()["detail"]
    assert api.post("/v1/outputs", "ingest", [output(i) for i in range(limit)]).status_code == 200
    big = [output(i, input="x" * 2000) for i in range(40)]  # about 90 kB > max_body_bytes
    declared = api.post("/v1/outputs", "ingest", big)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        payload = json.dumps(big).encode()
        for start in range(0, len(payload), 8192):
            yield payload[start : start + 8192]

    streamed = api.http.post("/v1/outputs", content=chunks(), headers=api.auth("ingest"))
    assert streamed.status_code == 413
    labels_too_big = api.post("/v1/labels", "review", [label(i, reason="y" * 3000) for i in range(30)])
    assert labels_too_big.status_code == 413
    assert count(engine, outputs) == limit and count(engine, labels) == 0


def test_errors_never_leak_internals(api: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.api.batches as batches

    def broken(*_args: object) -> object:
        raise RuntimeError("secret internals: postgresql://user:pw@db/aiqm")

    monkeypatch.setattr(batches, "insert_outputs", broken)
    answer = api.post("/v1/outputs", "ingest", [output(1)])
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error"}
    assert "secret" not in answer.text and "Traceback" not in answer.text
