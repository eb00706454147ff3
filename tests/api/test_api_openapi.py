"""Issue 15: an OpenAPI document other tools can use, and one parser for every timestamp.

The document at `/openapi.json` validates with `openapi-spec-validator`, every `$ref` in it
resolves from the document's root into `components`, every route documents the answers it
really gives (with their bodies), and the schemas say what the server checks. Timestamps out of
range (year 9999 with a negative offset is year 10000 in UTC) are a 422 naming the field
wherever the API takes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from api_support import NOW, Site, output, settings_for
from api_support import site as serve
from openapi_spec_validator import validate

from monitor.errors import InputError
from monitor.formats import parse_ts
from monitor.store.engine import make_engine

if TYPE_CHECKING:
    from conftest import Stores

OUT_OF_RANGE = ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/components/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture(scope="module")
def site(stores: Stores) -> Iterator[Site]:
    engine = make_engine(stores.sqlite())
    try:
        with serve(engine) as running:
            yield running
    finally:
        engine.dispose()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_document_validates_and_every_ref_resolves(site: Site) -> None:
    doc = site.http.get("/openapi.json").json()
    validate(doc)
    found = set(refs(doc))
    assert "#/components/schemas/OutputIn" in found and "#/components/schemas/LabelIn" in found
    for pointer in found:
        assert isinstance(resolve(doc, pointer), dict), pointer
    assert "$defs" not in str(doc)
    batch = doc["paths"]["/v1/outputs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch == {"type": "array", "items": {"$ref": "#/components/schemas/OutputIn"}}


def test_every_route_documents_its_answers(site: Site) -> None:
    doc = site.http.get("/openapi.json").json()
    for path, method, operation in operations(doc):
        answers = operation["responses"]
        if operation.get("security"):
            assert {"401", "403"} <= answers.keys(), (method, path)
        for status, answer in answers.items():
            if status.startswith("4") and path != "/ofrep/v1/evaluate/flags/{key}":
                assert "application/json" in answer.get("content", {}), (method, path, status)
        if "422" in answers:
            schema = answers["422"]["content"]["application/json"]["schema"]["$ref"]
            assert schema.rsplit("/", 1)[1] in {"Errors", "BatchErrors"}, (method, path)
    override = doc["paths"]["/v1/features/{feature}/override"]["post"]["responses"]
    assert {"404", "413", "422"} <= override.keys()
    flag = doc["paths"]["/ofrep/v1/evaluate/flags/{key}"]["post"]["responses"]
    failure = resolve(doc, flag["413"]["content"]["application/json"]["schema"]["$ref"])
    assert "errorCode" in failure["required"]
    assert {"401", "403"} <= doc["paths"]["/ofrep/v1/configuration"]["get"]["responses"].keys()
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_the_schemas_say_what_the_server_checks(site: Site) -> None:
    schemas = site.http.get("/openapi.json").json()["components"]["schemas"]
    out, label = schemas["OutputIn"], schemas["LabelIn"]
    assert set(out["required"]) == {"id", "feature", "ts"}
    assert set(label["required"]) == {"output_id", "feature", "verdict", "source"}
    assert out["properties"]["ts"]["format"] == "date-time"
    assert out["properties"]["id"]["minLength"] == 1 and label["properties"]["output_id"]["minLength"] == 1
    version = out["properties"]["model_version"]["anyOf"][0]
    assert version["minLength"] == 1
    assert out["additionalProperties"] is False and label["additionalProperties"] is False
    until = schemas["OverrideIn"]["properties"]["until"]["anyOf"][0]
    assert until == {"type": "string", "format": "date-time"}
    empty = site.http.post("/v1/outputs", json=[output(1, model_version="")], headers=site.auth("ingest"))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "model_version"


def test_metrics_declares_a_token_only_when_the_config_asks(site: Site, stores: Stores) -> None:
    open_doc = site.http.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "security" not in open_doc and "401" not in open_doc["responses"]
    engine = make_engine(stores.sqlite())
    try:
        with serve(engine, settings_for(metrics_role="read")) as guarded:
            closed = guarded.http.get("/openapi.json").json()["paths"]["/metrics"]["get"]
            assert closed["security"] and {"401", "403"} <= closed["responses"].keys()
            assert guarded.http.get("/metrics").status_code == 401
            assert guarded.http.get("/metrics", headers=guarded.auth("read")).status_code == 200
    finally:
        engine.dispose()


def test_a_405_allows_every_method_of_the_path(site: Site) -> None:
    for method in ("OPTIONS", "PUT", "GET"):
        refused = site.http.request(method, "/v1/features/support-reply/override", headers=site.auth("admin"))
        assert refused.status_code == 405
        assert set(refused.headers["allow"].split(", ")) == {"POST", "DELETE"}


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_the_one_parser_refuses_moments_with_no_utc_equivalent(value: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_ts(value, "until")
    assert refused.value.field == "until" and "not a valid date and time" in refused.value.message
    assert parse_ts("9999-12-31T23:59:59Z", "until").year == 9999  # the last moment Python holds


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_every_timestamp_the_api_takes_refuses_out_of_range(site: Site, value: str) -> None:
    override = site.http.post(
        "/v1/features/support-reply/override",
        json={"mode": "off", "reason": "test", "until": value},
        headers=site.auth("admin"),
    )
    assert override.status_code == 422, override.text
    assert override.json()["errors"][0]["field"] == "until"
    assert "not a valid date and time" in override.json()["errors"][0]["message"]
    stored = site.http.post("/v1/outputs", json=[output(1, ts=value)], headers=site.auth("ingest"))
    assert stored.status_code == 422 and stored.json()["errors"][0]["field"] == "ts"
    site.http.post("/v1/outputs", json=[output(2)], headers=site.auth("ingest"))
    labelled = site.http.post(
        "/v1/labels",
        json=[
            {
                "output_id": "out-2",
                "feature": "support-reply",
                "verdict": "pass",
                "source": "human:a",
                "ts": value,
            }
        ],
        headers=site.auth("review"),
    )
    assert labelled.status_code == 422 and labelled.json()["errors"][0]["field"] == "ts"


def test_until_is_read_by_the_same_parser(site: Site) -> None:
    for bad, words in (
        ("2026-03-09T06:00:00", "RFC 3339"),
        (1767225600, "RFC 3339"),
        ("2026-02-30T00:00:00Z", "day"),
    ):
        refused = site.http.post(
            "/v1/features/support-reply/override",
            json={"mode": "off", "reason": "test", "until": bad},
            headers=site.auth("admin"),
        )
        assert refused.status_code == 422 and words in refused.json()["errors"][0]["message"], refused.text
    later = (NOW.replace(year=NOW.year + 1)).isoformat().replace("+00:00", "-01:00")
    taken = site.http.post(
        "/v1/features/support-reply/override",
        json={"mode": "off", "reason": "test", "until": later},
        headers=site.auth("admin"),
    )
    assert taken.status_code == 200, taken.text
    site.http.delete("/v1/features/support-reply/override", headers=site.auth("admin"))
