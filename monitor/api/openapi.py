"""The OpenAPI document at `/openapi.json`, in a shape other tools (generators, fuzzers) can use.

FastAPI builds it from the routes; this module adds what FastAPI cannot see and corrects what
it guesses:

- the request bodies the routes read themselves (a batch is validated by `monitor.records`, the
  same code as `aiqm ingest`, not by pydantic) are `$ref`s to `OutputIn`, `LabelIn` and
  `OverrideIn`, and those schemas (with `JsonValue`) are put into `components`, so every `$ref`
  of the document resolves from its root;
- every 422 is this API's `{"errors": [...]}` (`Errors`, or `BatchErrors` for a batch), never
  FastAPI's `HTTPValidationError`, which no route answers;
- the answers every route can give are declared once here (`AUTH`, `STORE`, ...).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from monitor.api.schemas import (
    JSON_VALUE,
    SCHEMAS,
    Errors,
    LabelIn,
    OutputIn,
    OverrideIn,
    Problem,
)

__all__ = ["AUTH", "STORE", "document", "ref", "request_body"]

BODY_MODELS: tuple[type[BaseModel], ...] = (OutputIn, LabelIn, OverrideIn, Errors, Problem)

AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown token (with `WWW-Authenticate: Bearer`)"},
    403: {"model": Problem, "description": "the token's role may not do this"},
}
"""What every route behind a token may answer."""

STORE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "the store cannot be reached; try again"},
}
"""What a route reading or writing the store answers when the store is down."""

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": SCHEMAS.format(model=name)}


def request_body(model: type[BaseModel], *, array: bool = False) -> dict[str, Any]:
    """A route's `openapi_extra` for a JSON body it reads itself: the model, or an array of them.

    An array has no `maxItems`: like the body's size, the number of records per request is a
    limit of the server (`server.max_batch`, answered 413), not a property of the data.
    """
    schema: dict[str, Any] = ref(model)
    if array:
        schema = {"type": "array", "items": schema}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then kept on the app)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        _, defs = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template=SCHEMAS)
        schemas.update(defs.get("$defs", {}))
        schemas["JsonValue"] = JSON_VALUE
        _our_422(doc)
        _plain_refs(doc)
        app.openapi_schema = doc
    return app.openapi_schema


def _our_422(doc: dict[str, Any]) -> None:
    """FastAPI's guessed 422 (`HTTPValidationError`) replaced by this API's `Errors`."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is None:
                continue
            content = answer.setdefault("content", {}).setdefault("application/json", {})
            if content.get("schema", {}).get("$ref") in (None, _FASTAPI_422):
                content["schema"] = ref(Errors)
                answer["description"] = 'a bad request: `{"errors": [{"field", "message"}]}`'
    schemas = doc.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)


def _plain_refs(node: Any) -> None:
    """A one-item `allOf` of a `$ref` (how pydantic is made to write a `$ref` with siblings) made
    the `$ref` itself, which OpenAPI 3.1 allows; openapi-spec-validator recurses without end on
    the `allOf` form of the recursive `JsonValue`."""
    if isinstance(node, dict):
        inner = node.get("allOf")
        if isinstance(inner, list) and len(inner) == 1 and set(inner[0]) == {"$ref"}:
            del node["allOf"]
            node["$ref"] = inner[0]["$ref"]
        for value in node.values():
            _plain_refs(value)
    elif isinstance(node, list):
        for item in node:
            _plain_refs(item)
