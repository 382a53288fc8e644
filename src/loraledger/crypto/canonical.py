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
import re
from typing import Any

import rfc8785

from ..errors import InputError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_SAFE_INT",
    "NotJSON",
    "canonicalize",
    "check_json_shape",
    "decode_json_text",
    "json_depth_exceeds",
    "reject_constant",
    "reject_duplicate_keys",
    "strict_loads",
]

#: Largest integer JSON carries exactly (I-JSON / RFC 8785): 2**53 - 1.
MAX_SAFE_INT = 2**53 - 1
#: Deepest nesting of arrays and objects accepted from outside. Python's JSON parser
#: recurses in C per level; a library that raises the recursion limit (py_ecc sets it to
#: 100,000) lets a ~70 KB body of ``[`` overflow the C stack and kill the process before
#: ``RecursionError`` can fire, so depth is checked with a flat scan before parsing.
MAX_JSON_DEPTH = 64


_PLAIN_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
_MIN_SAFE_INT = -MAX_SAFE_INT


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON that :mod:`json` encodes exactly as RFC 8785 does: no floats (ES6
    number formatting differs), integers within I-JSON's range, object keys that are strings in the
    Basic Multilingual Plane (RFC 8785 sorts keys by UTF-16 code units, Python by code points: the
    two orders agree there), no lone surrogates (not UTF-8). Anything else takes the reference
    implementation."""
    if value is None or value is True or value is False:
        return True
    kind = type(value)
    if kind is str:
        return value.isascii() or not _has_surrogate(value)
    if kind is int:
        return _MIN_SAFE_INT <= value <= MAX_SAFE_INT
    if depth > 32:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _bmp_key(key)) or not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bmp_key(key: str) -> bool:
    return max(key) <= "\uffff" and not _has_surrogate(key)


def canonicalize(value: Any) -> bytes:
    """RFC 8785 encoding of a JSON value (dicts, lists, str, int in ``[-2**53+1, 2**53)``,
    float, bool, None).

    Records, rows and manifests are mostly strings and integers, which :mod:`json`'s C encoder
    writes byte for byte as RFC 8785 does (sorted keys, no whitespace, the same minimal escapes):
    that path is taken when :func:`_plain` says so (several times faster); floats, astral-plane
    keys and anything unusual go through the ``rfc8785`` reference implementation.
    ``tests/test_records.py`` checks the two agree on generated values."""
    if _plain(value):
        return _PLAIN_ENCODER.encode(value).encode("utf-8")
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise InputError(f"value cannot be canonicalised as JSON: {exc}") from None


# Bytes a structural scan keeps: string quotes, brackets and commas (everything else is
# a scalar or whitespace, which neither nests nor makes new values).
_STRUCTURAL = b'"[]{},'
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in _STRUCTURAL)
# A string literal once its escaped quotes and backslashes are gone; an unterminated one
# runs to the end (the text is then invalid JSON, which the parser reports).
_STRING_LITERAL = re.compile(rb'"[^"]*(?:"|$)')
_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_OPENERS = frozenset(b"[{")


def _structure(data: str | bytes | bytearray) -> bytes:
    """The brackets and commas of a JSON text outside its strings, in order.

    Runs at C speed (``bytes.replace``/``translate``/``re.sub``) however large the text: a
    64 MiB contribution, whose rows are one big string, reduces to a few bytes."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    # Drop escaped backslashes first, then escaped quotes: what remains of each ``"`` is a
    # real string delimiter (``\\"`` is a backslash then the end of the string).
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return _STRING_LITERAL.sub(b"", raw.translate(None, _NOT_STRUCTURAL))


def _depth_exceeds(structure: bytes, limit: int) -> bool:
    depth = 0
    for byte in structure:
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte != 44:  # a closing bracket (44 is the comma)
            depth -= 1
            if depth < 0:  # closes more than it opened: not JSON, which the parser reports
                return False
    return False


def json_depth_exceeds(data: str | bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``limit``.

    A flat scan that never recurses, so it is safe on any input, and fast on large ones:
    strings are cut out at C speed before the brackets are counted."""
    return _depth_exceeds(_structure(data), limit)


def check_json_shape(
    data: str | bytes | bytearray, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH,
    max_values: int | None = None,
) -> None:
    """``InputError`` if the JSON text nests deeper than ``max_depth`` or holds more than
    ``max_values`` values (arrays, objects and the elements and members in them), checked
    BEFORE parsing: a parser recursing per level overflows the C stack on deep input, and
    one small body of ``[[],[],...]`` parses into far more memory than its size."""
    structure = _structure(data)
    if _depth_exceeds(structure, max_depth):
        raise InputError(f"{what} nests arrays or objects deeper than {max_depth} levels", limit=max_depth)
    if max_values is not None:
        # Each comma separates two values, each bracket pair is one: an upper bound.
        values = structure.count(b",") + (len(structure) - structure.count(b",")) // 2 + 1
        if values > max_values:
            raise InputError(f"{what} holds more than {max_values:,} JSON values", limit=max_values)


class NotJSON(InputError):
    """The text is not valid JSON; ``reason`` is what the decoder found, without ``what``."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} is not valid JSON: {reason}")
        self.reason = reason


def decode_json_text(data: str | bytes | bytearray, *, what: str = "JSON") -> str:
    """The text of a JSON document sent as bytes: UTF-8 only (RFC 8259), strictly decoded
    (:class:`NotJSON` otherwise). ``json.loads`` would also take UTF-16/32 and UTF-8-encoded
    lone surrogates."""
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotJSON(what, f"invalid UTF-8 at byte {exc.start}") from None


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` refusing a key given twice (``InputError``)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"the JSON has the key {key[:80]!r} twice")
        out[key] = value
    return out


def reject_constant(name: str) -> Any:
    """``parse_constant`` for ``json.loads`` refusing NaN and ±Infinity (``InputError``)."""
    raise InputError(f"the JSON may not contain {name}")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:  # iterative: the value may be as deep as the depth limit allows
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def strict_loads(
    data: str | bytes | bytearray, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH,
    max_values: int | None = None,
) -> Any:
    """Parse untrusted JSON text; ``InputError`` naming ``what`` if it is not valid JSON
    (:class:`NotJSON`: UTF-8 only, no lone surrogates even escaped), has a key twice,
    contains NaN/Infinity, nests deeper than ``max_depth`` or holds more than ``max_values``
    values."""
    text = decode_json_text(data, what=what)
    check_json_shape(text, what=what, max_depth=max_depth, max_values=max_values)
    try:
        value = json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=reject_constant)
    except InputError as exc:
        raise InputError(f"{what}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise NotJSON(what, str(exc)) from None
    # "\ud800" parses to a str no UTF-8 encoder (nor RFC 8785) accepts: refuse it here.
    if _LONE_SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise NotJSON(what, "a string holds an unpaired UTF-16 surrogate escape")
    return value
