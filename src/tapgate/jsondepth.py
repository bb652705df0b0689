"""JSON from outside with a nesting limit.

`json.loads` accepts nesting up to the interpreter's recursion limit and then raises
RecursionError, which request handlers do not expect. A message nested a few hundred levels deep
also breaks the recursive RFC 8785 serializer later. tapgate's messages nest three or
four levels, so anything deeper than `MAX_DEPTH` is refused as a ValueError at the edge.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class TooDeep(ValueError):
    pass


class DuplicateKey(ValueError):
    """An object names the same key twice; parsers disagree on which value wins."""

    def __init__(self, key: str) -> None:
        super().__init__(f"JSON object has the key {key!r} twice")
        self.key = key


class NotUtf8(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return value


# Built once: json.loads with a hook builds a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique)


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON; raise ValueError for bad JSON, NotUtf8 for bytes that are not UTF-8,
    DuplicateKey for an object with a key twice and TooDeep past `max_depth` levels."""
    if not isinstance(data, str):
        # json.loads would also guess UTF-16 and UTF-32 from the first bytes. JSON between
        # systems is UTF-8 (RFC 8259, section 8.1), and the callers' check for lone surrogates
        # relies on it.
        # JSON never contains a raw NUL byte, and UTF-16 or UTF-32 text nearly always does.
        if b"\x00" in data:
            raise NotUtf8("JSON text contains NUL bytes, as UTF-16 or UTF-32 does")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8("JSON text is not valid UTF-8") from exc
    try:
        value = _DECODER.decode(data)
    except RecursionError as exc:
        raise TooDeep(f"JSON is nested deeper than {max_depth} levels") from exc
    # Each level opens with a bracket, so text with few brackets cannot nest too deep. Counting
    # them runs in C, while walking the parsed value took about 3 % of a push login's server CPU.
    brackets = data.count("{") + data.count("[")
    if brackets > max_depth and _depth_over(value, max_depth):
        raise TooDeep(f"JSON is nested deeper than {max_depth} levels")
    return value


def _depth_over(value: Any, max_depth: int) -> bool:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
