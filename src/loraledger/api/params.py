"""Integer path and query parameters: canonical decimal only.

FastAPI's integer parsing (pydantic, lax mode) takes ``"1.0"``, ``"+1"``, ``"01"``,
``" 1"`` and ``"1_0"`` as integers, so ``/v1/datanets/1.0`` would name datanet 1 and one
resource would have many URLs. :data:`CanonicalInt` takes only ``0`` or ``-?[1-9][0-9]*``
(the sign is kept so that each route can say what is wrong with a negative number):

* an integer spelled any other way that pydantic would have taken → 400 (the error handler
  turns :class:`NonCanonicalInteger` into an ``invalid_input`` body naming the parameter);
* text that is no integer at all (``abc``) → 422, as FastAPI answers any type error;
* more than :data:`MAX_DIGITS` digits → 400: no id or size the node stores is that large,
  and the number would only fill the error message.

Ranges (ids start at 1, at most 2**63 - 1, ...) stay each route's business.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, TypeAdapter, ValidationError

__all__ = ["MAX_DIGITS", "CanonicalInt", "NonCanonicalInteger", "OptionalCanonicalInt"]

#: Longest integer parameter read (2**64 has 20 digits; 2**256 has 78).
MAX_DIGITS = 80
_CANONICAL = re.compile(r"0|-?[1-9][0-9]*")
_LAX_INT = TypeAdapter(int)


class NonCanonicalInteger(ValueError):
    """An integer parameter spelled other than as a canonical decimal (answered 400)."""


def _canonical(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if _CANONICAL.fullmatch(value):
        if len(value.lstrip("-")) > MAX_DIGITS:
            raise NonCanonicalInteger(f"{len(value)}-character integer is out of range")
        return value
    try:
        _LAX_INT.validate_python(value)
    except ValidationError:
        return value  # not an integer at all: pydantic's own type error (422)
    raise NonCanonicalInteger(
        f"{value[:40]!r} is not a canonical decimal integer (digits only: no '+', leading zeros, "
        "spaces, underscores or decimal point)"
    )


#: An ``int`` path or query parameter that must be written in canonical decimal.
CanonicalInt = Annotated[int, BeforeValidator(_canonical)]
#: The same, for an optional query parameter (the check runs before the union is tried, so
#: that a non-canonical value is reported as such rather than as "not an int, not None").
OptionalCanonicalInt = Annotated[int | None, BeforeValidator(_canonical)]
