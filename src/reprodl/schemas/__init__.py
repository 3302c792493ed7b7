"""The JSON Schemas of the package's file formats, shipped with it, and clear errors from them.

A schema says what a file's structure is (fields, types, ranges); the module of each format checks
what the fields mean. :func:`check` reports the first structural problem as one line that names
the file and the field (``run.json: missing field 'meta.seed'``), not as jsonschema's own text.

Two choices differ from plain ``jsonschema``: an ``integer`` is a JSON integer written without a
fraction (``12``, not ``12.0``, which Python reads as a float), and a schema location may carry
``x-message``, the error message to give there, a template with ``{field}``, ``{value}`` (its
``repr``), ``{key}`` and ``{parent}`` (the last two parts of the field's path) and ``{number}``
(the last list index plus one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from reprodl.errors import RecordError, ReprodlError

#: The formats with a schema here: ``NAME.schema.json``.
NAMES = ("run_record", "decomposition", "crosscheck", "distributed_worker")

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of :data:`NAMES`) as a dict, read from the package's data."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}; the package has {', '.join(NAMES)}")
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema

    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    schema = load(name)
    base.check_schema(schema)
    return jsonschema.validators.extend(base, type_checker=strict)(schema)


def check(payload: Any, name: str, where: str, *, error: type[ReprodlError] = RecordError) -> None:
    """Raise ``error("WHERE: problem")`` unless ``payload`` has the structure of schema ``name``.

    Of several problems the one nearest the top of the document is reported (the first of them
    in the schema's order), so a missing section is named before the fields inside it.
    """
    errors = list(_validator(name).iter_errors(payload))
    if errors:
        first = min(errors, key=lambda e: len(e.absolute_path))
        raise error(f"{where}: {message(first)}")


def field_name(path: Sequence[str | int]) -> str:
    """A JSON location as text: ``meta.steps``, ``variables[0].kind``, or ``the top level``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def message(err: Any) -> str:
    """One line for a :class:`jsonschema.ValidationError`: the field and what is wrong with it."""
    path = list(err.absolute_path)
    field, value = field_name(path), err.instance
    node = err
    while node is not None:  # an x-message here or on an enclosing anyOf wins
        template = node.schema.get("x-message") if isinstance(node.schema, dict) else None
        if template:
            ints = [p for p in path if isinstance(p, int)]
            return template.format(
                field=field,
                value=repr(value),
                key=path[-1] if path else "",
                parent=path[-2] if len(path) > 1 else "",
                number=ints[-1] + 1 if ints else "",
            )
        node = node.parent
    kind, limit = err.validator, err.validator_value
    if kind == "required":
        missing = next(k for k in limit if k not in value)
        return f"missing field '{field_name([*path, missing])}'"
    if kind == "type":
        wanted = " or ".join([limit] if isinstance(limit, str) else limit)
        shown = "" if isinstance(value, (dict, list)) else f" {_short_repr(value)}"
        return f"field '{field}' has the wrong type ({_json_type(value)}{shown}; expected {wanted})"
    if kind == "exclusiveMinimum" and limit == 0:
        return f"field '{field}' must be positive, got {value!r}"
    if kind == "minimum" and limit == 0:
        return f"field '{field}' must not be negative, got {value!r}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }
        return f"field '{field}' must be {words[kind]} {limit!r}, got {value!r}"
    if kind == "minItems" and limit == 1:
        return f"field '{field}' must be a non-empty list"
    if kind in ("const", "enum"):
        options = [limit] if kind == "const" else limit
        return f"field '{field}' must be {' or '.join(map(repr, options))}, got {value!r}"
    if kind == "additionalProperties":
        extra = sorted(k for k in value if k not in err.schema.get("properties", {}))
        return f"unknown field '{field_name([*path, extra[0]])}'"
    if kind == "uniqueItems":
        return f"field '{field}' has an item twice"
    return f"field '{field}': {err.message}"
