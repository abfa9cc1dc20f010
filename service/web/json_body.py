"""Request bodies read as strict JSON (RFC 8259), with every refusal a clear 400.

Python's `json.loads` is lenient where a booking must not be: a repeated member silently
keeps the last value (`{"bookingId": "x", "bookingId": "y"}` books "y"), `NaN` and
`Infinity` are accepted although JSON has no such values, and two inputs escape as
exceptions the API would answer with a 500: nesting deeper than the interpreter's
recursion limit (`RecursionError`) and integers longer than Python's digit limit
(`ValueError`, CPython's guard against quadratic int parsing). Everything here is refused
before any field is looked at.
"""

from __future__ import annotations

import json
from typing import Any

from service.foundation.errors import InvalidRequest

# No field of this API is a number; 20 digits hold any 64-bit integer a client might send
# in error, and keep the refusal message short.
MAX_INTEGER_DIGITS = 20
SHOWN_NAME_LENGTH = 64


def parse(data: bytes) -> Any:
    """The JSON document in `data`; raises InvalidRequest saying what to fix."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused("is not UTF-8 encoded (JSON must be UTF-8)") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_object_without_repeats,
            parse_int=_bounded_integer,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as error:
        where = f"{error.msg} at line {error.lineno}, column {error.colno}"
        raise _refused("is not valid JSON", where) from None
    except RecursionError:
        raise _refused("is nested too deeply to be a booking; send the documented fields") from None


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise _refused(
                f"has the member {_shown(name)} more than once in one object; send each member once"
            )
        found[name] = value
    return found


def _bounded_integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _refused(f"has an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise _refused(f"has {name}, which is not a JSON value")


def _shown(name: str) -> str:
    return repr(name if len(name) <= SHOWN_NAME_LENGTH else name[:SHOWN_NAME_LENGTH] + "…")


def _refused(what: str, why: str | None = None) -> InvalidRequest:
    detail = f"The body {what}" + (f" ({why})." if why else ".")
    return InvalidRequest(detail, {"body": what})
