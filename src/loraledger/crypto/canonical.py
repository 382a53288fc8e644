"""RFC 8785 canonical JSON and strict JSON parsing (pure core: no I/O).

Every hash the node publishes (record hashes, epoch data hashes, manifests, provenance) is
taken over :func:`canonicalize`'s bytes: keys sorted by UTF-16 code units, no whitespace,
minimal escaping, UTF-8. JSON cannot carry integers above 2**53 exactly (I-JSON, RFC 7493),
so such values travel as decimal strings.

:func:`strict_loads` is the one JSON parser for untrusted input: duplicate keys, NaN and
Infinity are refused (two parsers reading one document must never see two different
objects), as is nesting deeper than :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from ..errors import InputError

__all__ = ["MAX_JSON_DEPTH", "MAX_SAFE_INT", "canonicalize", "json_depth_exceeds", "strict_loads"]

#: Largest integer JSON carries exactly (I-JSON / RFC 8785): 2**53 - 1.
MAX_SAFE_INT = 2**53 - 1
#: Deepest nesting of arrays and objects accepted from outside. Python's JSON parser
#: recurses in C per level; a library that raises the recursion limit (py_ecc sets it to
#: 100,000) lets a ~70 KB body of ``[`` overflow the C stack and kill the process before
#: ``RecursionError`` can fire, so depth is checked with a flat scan before parsing.
MAX_JSON_DEPTH = 64


def canonicalize(value: Any) -> bytes:
    """RFC 8785 encoding of a JSON value (dicts, lists, str, int in ``[-2**53+1, 2**53)``,
    float, bool, None)."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise InputError(f"value cannot be canonicalised as JSON: {exc}") from None


def json_depth_exceeds(data: str | bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``limit`` (a flat scan that
    skips strings; it never recurses, so it is safe on any input)."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"the JSON has the key {key!r} twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise InputError(f"the JSON may not contain {name}")


def strict_loads(data: str | bytes | bytearray, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON text; ``InputError`` naming ``what`` if it is not valid JSON, has
    a key twice, contains NaN/Infinity, or nests deeper than ``max_depth``."""
    if json_depth_exceeds(data, max_depth):
        raise InputError(f"{what} nests arrays or objects deeper than {max_depth} levels")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except InputError as exc:
        raise InputError(f"{what}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
