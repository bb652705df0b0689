"""The check for ids that clients send back: device, transaction and client ids."""

from __future__ import annotations

from typing import TypeGuard

MAX_IDENTIFIER_CHARACTERS = 64


def is_identifier(value: object) -> TypeGuard[str]:
    """Return whether `value` can be an id that tapgate issued: 1 to 64 characters, no NUL.

    PostgreSQL rejects NUL in text parameters with an error, so such a value is turned away
    before it reaches a query."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_IDENTIFIER_CHARACTERS
        and "\x00" not in value
    )
