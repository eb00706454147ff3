"""The JSON Schema subset the `json` judge checks: type, required, properties, enum, items,
additionalProperties (boolean or a schema). Other keywords are refused when the config loads
(`monitor.config.SCHEMA_KEYWORDS`), so nothing a user wrote is silently left unchecked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["schema_errors"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False  # JSON's true is not a number
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, ()))


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "$", limit: int = 5) -> list[str]:
    """Where `value` breaks `schema` (at most `limit` places), as `path: what` lines."""
    errors: list[str] = []
    _check(value, schema, path, errors, limit)
    return errors


def _check(value: Any, schema: Mapping[str, Any], path: str, errors: list[str], limit: int) -> None:
    if len(errors) >= limit:
        return
    wanted = schema.get("type")
    if wanted is not None:
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if not any(_is_type(value, name) for name in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {_type_name(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, dict):
        _check_object(value, schema, path, errors, limit)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", errors, limit)
    del errors[limit:]


def _check_object(
    value: dict[str, Any], schema: Mapping[str, Any], path: str, errors: list[str], limit: int
) -> None:
    """`required`, `properties` and `additionalProperties` of an object."""
    for key in schema.get("required", ()):
        if key not in value:
            errors.append(f"{path}: missing required property {key!r}")
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], f"{path}.{key}", errors, limit)
        elif extra is False:
            errors.append(f"{path}: property {key!r} is not allowed")
        elif isinstance(extra, dict):
            _check(item, extra, f"{path}.{key}", errors, limit)


def _type_name(value: Any) -> str:
    for name in _TYPES:
        if _is_type(value, name):
            return name
    return type(value).__name__
