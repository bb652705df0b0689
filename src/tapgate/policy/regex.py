"""Administrator regular expressions, compiled with RE2 to match folded attribute values.

RE2 runs in time linear in the input, so a pattern typed in the console cannot stall a login.
It rejects the constructs that would need backtracking (backreferences, lookaround) when the
pattern is compiled, which is when a policy is saved.

Attribute values are matched in their folded form (see `tapgate.policy.folding`), so the
literal characters of the pattern are folded the same way before compiling: `/BİLGİ.*/` must
match the folded `bilgi işlem`. Escapes, group headers and class ranges are left to RE2, which
compiles the pattern case-insensitively. Because the pattern sees the folded value, `.` matches
one character of `strasse`, not the `ß` of `Straße`.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

import re2

from tapgate.errors import PolicyValueError
from tapgate.policy.folding import fold

__all__ = ["CompiledRegex", "compile_regex", "fold_pattern"]

_COMBINING_DOT_ABOVE = "\u0307"


class CompiledRegex(Protocol):
    """The part of `re2._Regexp` that matching uses."""

    def fullmatch(self, text: str) -> object | None: ...

    @property
    def programsize(self) -> int: ...


MAX_PROGRAM_MEMORY = 1 << 20


def compile_regex(pattern: str, value: str) -> CompiledRegex:
    """Compile `pattern`, the text between the slashes of the policy value `value`.

    Raises PolicyValueError naming `value`. Its position is the offset in `value` of the
    fragment RE2 complains about, or None when RE2 points at the whole pattern.
    """
    # Compile the pattern as typed first, so error fragments and offsets refer to what the
    # administrator wrote, not to the folded copy.
    _compile(pattern, value)

    return _compile(fold_pattern(pattern), value)


def fold_pattern(pattern: str) -> str:
    """Fold the literal characters of an RE2 pattern as `fold` folds text.

    Escapes (`\\D`, `\\p{Lu}`, `\\x{130}`), group headers (`(?i)`, `(?P<Name>`) and class
    ranges are copied unchanged, because folding them would change their meaning; RE2's own
    case-insensitive matching covers them. A single class member is folded only when it folds
    to one character. Outside a class, a character that folds to several (`ß` to `ss`)
    becomes a non-capturing group, so a quantifier after it still applies to all of it.
    """
    pattern = unicodedata.normalize("NFC", pattern)
    output: list[str] = []
    class_start: int | None = None  # offset of the first member while inside `[...]`
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if pattern.startswith("\\Q", position) and class_start is None:
            position = _fold_quoted(pattern, position, output)
        elif char == "\\":
            end = _escape_end(pattern, position)
            output.append(pattern[position:end])
            position = end
        elif class_start is not None:
            # A `]` right after `[` or `[^` is a member of the class, not its end.
            if char == "]" and position != class_start:
                class_start = None
                output.append(char)
                position += 1
            else:
                position = _fold_class_item(pattern, position, output)
        elif char == "[":
            header = "[^" if pattern.startswith("[^", position) else "["
            output.append(header)
            position += len(header)
            class_start = position
        elif pattern.startswith("(?", position):
            end = _group_header_end(pattern, position)
            output.append(pattern[position:end])
            position = end
        elif char == _COMBINING_DOT_ABOVE and output and output[-1] == "i":
            # `fold` turns i followed by a combining dot above into a plain i.
            position += 1
        else:
            folded = fold(char)
            output.append(folded if len(folded) == 1 else f"(?:{folded})")
            position += 1

    return "".join(output)


def _compile(pattern: str, value: str) -> CompiledRegex:
    options = re2.Options()
    # RE2 otherwise writes every rejected pattern to standard error through its own logger.
    options.log_errors = False
    options.case_sensitive = False
    # Compiling large Unicode classes with counted repeats can take seconds; with this memory
    # cap such a pattern fails in milliseconds as "pattern too large" instead.
    options.max_mem = MAX_PROGRAM_MEMORY
    try:
        compiled: CompiledRegex = re2.compile(pattern, options)
    except re2.error as error:
        raise _policy_error(error, pattern, value) from error
    return compiled


def _policy_error(error: Exception, pattern: str, value: str) -> PolicyValueError:
    detail = error.args[0] if error.args else ""
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    description, _, fragment = text.partition(": ")

    position: int | None = None
    if description == "trailing \\":
        position = len(pattern) - 1
    elif fragment and fragment != pattern and fragment in pattern:
        # NOTE: RE2 reports only the fragment, so a fragment that occurs twice is placed at
        # its first occurrence.
        position = pattern.index(fragment)

    hint = ""
    if fragment.startswith(("(?=", "(?!", "(?<=", "(?<!")):
        hint = " (lookaround is not supported)"
    elif fragment.startswith("(?P") or (fragment[:1] == "\\" and fragment[1:2].isdigit()):
        hint = " (backreferences are not supported)"

    message = f"invalid regular expression {value!r}: {text}{hint}"
    # The value starts with the opening slash, one character before the pattern.
    return PolicyValueError(message, value, None if position is None else position + 1)


def _escape_end(pattern: str, position: int) -> int:
    """Return the offset just after the escape that starts at `position`."""
    letter = pattern[position + 1 : position + 2]
    if letter in ("p", "P", "x") and pattern.startswith("{", position + 2):
        close = pattern.find("}", position + 3)
        return len(pattern) if close < 0 else close + 1
    if letter in ("p", "P"):
        return min(position + 3, len(pattern))
    if letter == "x":
        return min(position + 4, len(pattern))
    return min(position + 2, len(pattern))


def _group_header_end(pattern: str, position: int) -> int:
    """Return the offset after a `(?...` header: its flags, name, and `)`, `:` or `>`."""
    end = position + 2
    while end < len(pattern) and pattern[end] not in "):>":
        end += 1
    return min(end + 1, len(pattern))


def _fold_quoted(pattern: str, position: int, output: list[str]) -> int:
    """Copy a `\\Q...\\E` literal starting at `position` with its text folded."""
    close = pattern.find("\\E", position + 2)
    end = len(pattern) if close < 0 else close
    output.append("\\Q" + fold(pattern[position + 2 : end]))
    if close < 0:
        return end
    output.append("\\E")
    return end + 2


def _fold_class_item(pattern: str, position: int, output: list[str]) -> int:
    """Copy one class member or range starting at `position`; fold a single member."""
    if pattern.startswith("[:", position):
        close = pattern.find(":]", position + 2)
        end = len(pattern) if close < 0 else close + 2
        output.append(pattern[position:end])
        return end

    is_range = (
        pattern[position + 1 : position + 2] == "-"
        and position + 2 < len(pattern)
        and pattern[position + 2] not in "]\\"
    )
    if is_range:
        output.append(pattern[position : position + 3])
        return position + 3

    folded = fold(pattern[position])
    output.append(folded if len(folded) == 1 else pattern[position])
    return position + 1
