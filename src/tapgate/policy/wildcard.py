"""Wildcard policy values: `*` matches any run of characters, over the whole value.

In a wildcard, `\\*` is a literal star and `\\\\` a literal backslash. Any other backslash is
a literal backslash. Both sides are folded before they meet, so matching ignores case.
"""

from __future__ import annotations

from tapgate.policy.folding import fold

__all__ = ["split_wildcard", "wildcard_matches"]


def split_wildcard(value: str) -> tuple[str, ...]:
    """Split a wildcard at its unescaped stars into folded literal segments."""
    segments: list[str] = []
    current: list[str] = []
    position = 0
    while position < len(value):
        char = value[position]
        following = value[position + 1 : position + 2]
        if char == "\\" and following in ("*", "\\"):
            current.append(following)
            position += 2
            continue

        if char == "*":
            segments.append(fold("".join(current)))
            current = []
        else:
            current.append(char)
        position += 1

    segments.append(fold("".join(current)))
    return tuple(segments)


def wildcard_matches(segments: tuple[str, ...], text: str) -> bool:
    """Match folded text against wildcard segments without backtracking, because each segment
    is searched once, leftmost first. A single segment (only escaped stars) is an exact value."""
    if len(segments) == 1:
        return text == segments[0]

    first, *middle, last = segments
    if len(text) < len(first) + len(last):
        return False
    if not text.startswith(first) or not text.endswith(last):
        return False

    # The leftmost place for each middle segment leaves the most room for the rest.
    position = len(first)
    end = len(text) - len(last)
    for segment in middle:
        found = text.find(segment, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True
