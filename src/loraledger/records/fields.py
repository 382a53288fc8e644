"""Field types of records, with their validators (pure core: no I/O).

:data:`Wei` (decimal strings in JSON), :data:`Address` (EIP-55), :data:`Bytes32`,
:data:`SafeUint`, :data:`Text` and :data:`Weights`, plus :func:`parse_wei` and
:func:`parse_address` for code that validates one value outside a record, and
:func:`validation_error`, which turns a pydantic ``ValidationError`` into one
:class:`~loraledger.errors.InputError` line naming the fields.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any

from eth_utils import to_checksum_address
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    WithJsonSchema,
    WrapSerializer,
)

from ..crypto.canonical import MAX_SAFE_INT
from ..errors import InputError

__all__ = [
    "MAX_SAFE_INT",
    "MAX_TEXT_LENGTH",
    "MAX_UINT256",
    "Address",
    "Bytes32",
    "FrozenDict",
    "SafeUint",
    "Text",
    "Wei",
    "Weights",
    "parse_address",
    "parse_wei",
    "short_repr",
    "validation_error",
]

#: Largest wei amount (Solidity uint256).
MAX_UINT256 = 2**256 - 1
#: Longest free-text field (ref, memo, source), in characters.
MAX_TEXT_LENGTH = 1024

# ------------------------------------------------------------------------------ types

_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32_RE = re.compile(r"0x[0-9a-fA-F]{64}")


def short_repr(value: object, limit: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validate_wei(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("amount must be an integer or a decimal string, not a boolean")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        if not _DECIMAL_RE.fullmatch(value):
            raise ValueError(
                "amount must be a decimal string of digits (no sign, spaces, exponent or "
                f"leading zeros), got {short_repr(value)}"
            )
        amount = int(value)
    elif isinstance(value, float):
        raise ValueError(
            f"amount must be an integer or a decimal string, not a float ({value!r}); amounts are in wei"
        )
    else:
        raise ValueError(f"amount must be an integer or a decimal string, got {type(value).__name__}")
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    if amount > MAX_UINT256:
        raise ValueError("amount exceeds the uint256 range (2**256 - 1)")
    return amount


def _validate_address(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"address must be a 0x-prefixed hex string, got {type(value).__name__}")
    if not _ADDRESS_RE.fullmatch(value):
        raise ValueError(f"address must be 0x followed by 40 hex digits, got {short_repr(value)}")
    checksummed = _checksum(value)
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError(f"address {value} has an invalid EIP-55 checksum (expected {checksummed})")
    return checksummed


@functools.lru_cache(maxsize=1 << 16)
def _checksum(value: str) -> str:
    """EIP-55 form (a keccak per call): cached, because an epoch reads the same few thousand
    addresses back hundreds of thousands of times."""
    return to_checksum_address(value)


def _validate_bytes32(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise ValueError(f"bytes32 must be 32 bytes, got {len(value)}")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or not _BYTES32_RE.fullmatch(value):
        raise ValueError(f"bytes32 must be 0x followed by 64 hex digits, got {short_repr(value)}")
    return value.lower()


def _validate_text(value: object) -> object:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (it contains a lone surrogate)") from None
    return value


#: A wei amount: an integer in ``[0, 2**256)``. Validates from an int or a canonical
#: decimal string (no sign, no leading zeros); rejects bools, floats and negatives.
#: Serialises to a decimal string in JSON mode (an int in Python mode).
Wei = Annotated[
    int,
    BeforeValidator(_validate_wei),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^(0|[1-9][0-9]*)$", "description": "wei, decimal string"}),
]

#: An EVM address, validated (0x + 40 hex digits; mixed case must be a valid EIP-55
#: checksum) and normalised to its checksummed form.
Address = Annotated[
    str,
    BeforeValidator(_validate_address),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$", "description": "EIP-55 address"}),
]

#: 32 bytes as 0x + 64 lowercase hex digits (accepts upper case and ``bytes``; normalises).
Bytes32 = Annotated[
    str,
    BeforeValidator(_validate_bytes32),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-f]{64}$"}),
]

#: A non-negative integer JSON carries exactly: ``[0, 2**53)``; no bools, floats or strings.
SafeUint = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INT)]

#: Free text (at most :data:`MAX_TEXT_LENGTH` characters, valid Unicode).
Text = Annotated[str, Strict(), Field(max_length=MAX_TEXT_LENGTH), BeforeValidator(_validate_text)]


def parse_wei(value: object) -> int:
    """Validate a wei amount (int or decimal string); ``InputError`` if it is not one."""
    try:
        return _validate_wei(value)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def parse_address(value: object) -> str:
    """Validate an address and return its EIP-55 form; ``InputError`` if it is not one."""
    try:
        return _validate_address(value)
    except ValueError as exc:
        raise InputError(str(exc)) from None


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses mutation (for mapping fields of frozen records); hashable."""

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("records are immutable")

    __setitem__ = __delitem__ = __ior__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _unique_address_keys(value: object) -> object:
    """Reject a mapping naming one address twice in two spellings (before normalising)."""
    if isinstance(value, Mapping):
        seen: dict[str, str] = {}
        for key in value:
            if isinstance(key, str):
                folded = key.lower()
                if folded in seen:
                    raise ValueError(f"address {key} appears twice (also as {seen[folded]})")
                seen[folded] = key
    return value


#: Attribution weights: ``{address: weight}`` with non-negative integer weights below
#: 2**53 (use a fixed denominator such as parts per million); may be empty. One address
#: given in two spellings is an error. Immutable once validated.
Weights = Annotated[
    dict[Address, SafeUint],
    BeforeValidator(_unique_address_keys),
    AfterValidator(FrozenDict),
    WrapSerializer(lambda value, handler: handler(dict(value))),
]


# ------------------------------------------------------------------------------ errors


_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this record",
}


def validation_error(exc: ValidationError, what: str) -> InputError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        message = _FRIENDLY.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        if len(loc) >= 2 and loc[-1] == "[key]":  # a bad mapping key
            message = f"key {loc[-2]!r}: {message}"
            loc = loc[:-2]
        field = ".".join(loc)
        problems.append({"field": field, "message": message})
    shown = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:3])
    if len(problems) > 3:
        shown += f" (and {len(problems) - 3} more)"
    return InputError(f"invalid {what}: {shown}", errors=problems)


