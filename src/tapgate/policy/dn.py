"""Distinguished names (RFC 4514 string form) parsed into a form that compares as LDAP does.

`memberOf` contains group DNs, and a policy value given as a DN must match the same group however
the directory spells it: `CN=IT,OU=Groups` and `cn=it, ou=groups` are one group, while
`CN=IT,OU=Istanbul` is another one. ldap3's `parse_dn` (2.9.1) rejects valid DNs (escaped
leading spaces, numeric OIDs, `#` hex values) and keeps escapes in the values, so tapgate
parses DNs itself.

The parser follows RFC 4514 section 3 and is lenient in one way that directories and
administrators rely on: spaces around `=`, `,` and `+` are ignored.
"""

from __future__ import annotations

import functools
import re
from typing import TypeAlias

from tapgate.policy.folding import fold

__all__ = ["DNKey", "DNSyntaxError", "dn_key", "first_cn", "looks_like_dn", "parse_dn"]

# One attribute type and value pair, one RDN (several pairs joined by `+`), and a whole DN.
AVA: TypeAlias = tuple[str, str]
RDN: TypeAlias = tuple[AVA, ...]
DNKey: TypeAlias = tuple[RDN, ...]

# Numeric OIDs and long names of the attribute types that appear in group DNs (RFC 4519).
_TYPE_ALIASES = {
    "2.5.4.3": "cn",
    "commonname": "cn",
    "2.5.4.11": "ou",
    "organizationalunitname": "ou",
    "2.5.4.10": "o",
    "organizationname": "o",
    "2.5.4.6": "c",
    "countryname": "c",
    "2.5.4.7": "l",
    "localityname": "l",
    "2.5.4.8": "st",
    "stateorprovincename": "st",
    "2.5.4.9": "street",
    "streetaddress": "street",
    "0.9.2342.19200300.100.1.25": "dc",
    "domaincomponent": "dc",
    "0.9.2342.19200300.100.1.1": "uid",
    "userid": "uid",
}

_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+")
_LOOKS_LIKE_DN = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*=")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Characters a value may escape with a backslash (RFC 4514 section 3, `special`).
_ESCAPABLE = frozenset(' "#+,;<=>\\')
# Characters that must be escaped inside a value; `,` and `+` end the value instead.
_MUST_ESCAPE = frozenset('";<>\x00')
_WHITESPACE = re.compile(r"\s+")


class DNSyntaxError(ValueError):
    """A string that is not a valid DN; `position` is the 0-based offset of the fault."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def looks_like_dn(text: str) -> bool:
    """Return whether `text` starts like a DN (`type=`), so a parse failure is a typo."""
    return _LOOKS_LIKE_DN.match(text) is not None


def parse_dn(text: str) -> DNKey:
    """Parse an RFC 4514 DN into RDNs of (attribute type, value) pairs.

    Attribute types come back lower-case, with known OIDs and long names replaced by their
    short names. Values come back unescaped, with unescaped leading and trailing spaces
    removed; a `#` hex value is kept as written, lower-cased. Raises DNSyntaxError.
    """
    if not text.strip():
        raise DNSyntaxError("DN is empty", 0)

    rdns: list[RDN] = []
    avas: list[AVA] = []
    position = 0
    while True:
        attribute_type, position = _parse_type(text, _skip_spaces(text, position))

        position = _skip_spaces(text, position)
        if position >= len(text) or text[position] != "=":
            raise DNSyntaxError(f"expected '=' after attribute type {attribute_type}", position)

        value, position = _parse_value(text, _skip_spaces(text, position + 1))
        avas.append((attribute_type, value))
        if position >= len(text):
            rdns.append(tuple(avas))
            return tuple(rdns)

        # `_parse_value` stops only at the end, `,` or `+`.
        if text[position] == ",":
            rdns.append(tuple(avas))
            avas = []
        position += 1
        if position >= len(text) or not text[position:].strip():
            raise DNSyntaxError("DN ends after a separator", position)


@functools.lru_cache(maxsize=8192)
def dn_key(text: str) -> DNKey | None:
    """Return the comparison form of a DN, or None when `text` is not a valid DN.

    Values are folded and runs of whitespace collapsed to one space (the insignificant space
    handling of RFC 4518), and the pairs of a multi-valued RDN are sorted, because their order
    carries no meaning. Cached: the same group DNs come back on every login.
    """
    try:
        rdns = parse_dn(text)
    except DNSyntaxError:
        return None

    return tuple(
        tuple(sorted((name, _WHITESPACE.sub(" ", fold(value)).strip()) for name, value in rdn))
        for rdn in rdns
    )


def first_cn(key: DNKey) -> str | None:
    """Return the CN of the first RDN of a DN in comparison form, or None when it has none."""
    for name, value in key[0]:
        if name == "cn":
            return value
    return None


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position] == " ":
        position += 1
    return position


def _parse_type(text: str, position: int) -> tuple[str, int]:
    match = _TYPE.match(text, position)
    if match is None:
        raise DNSyntaxError("expected an attribute type such as CN, OU or DC", position)

    name = match.group().lower()
    return _TYPE_ALIASES.get(name, name), match.end()


def _parse_value(text: str, position: int) -> tuple[str, int]:
    """Parse one attribute value starting at `position`; return it and the offset after it."""
    if position < len(text) and text[position] == "#":
        end = position + 1
        while end < len(text) and text[end] in _HEX_DIGITS:
            end += 1
        if end - position < 3 or (end - position - 1) % 2:
            raise DNSyntaxError("a '#' value needs an even number of hex digits", position)
        after = _skip_spaces(text, end)
        if after < len(text) and text[after] not in ",+":
            raise DNSyntaxError("a '#' value may contain only hex digits", after)
        return text[position:end].lower(), after

    chars: list[str] = []
    # Length of `chars` up to its last escaped or non-space character: trailing spaces
    # count only when escaped.
    significant = 0
    pending = bytearray()
    pending_start = position
    while position < len(text) and text[position] not in ",+":
        char = text[position]
        if char == "\\" and _is_hex_pair(text, position + 1):
            # Consecutive `\XX` escapes together spell one UTF-8 sequence.
            if not pending:
                pending_start = position
            pending.append(int(text[position + 1 : position + 3], 16))
            position += 3
            continue

        if pending:
            significant = _flush_utf8(pending, pending_start, chars)
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped not in _ESCAPABLE:
                raise DNSyntaxError("invalid escape in DN value", position)
            chars.append(escaped)
            significant = len(chars)
            position += 2
            continue
        if char in _MUST_ESCAPE:
            raise DNSyntaxError(f"character {char!r} must be escaped in a DN value", position)

        chars.append(char)
        if char != " ":
            significant = len(chars)
        position += 1

    if pending:
        significant = _flush_utf8(pending, pending_start, chars)
    return "".join(chars[:significant]), position


def _is_hex_pair(text: str, position: int) -> bool:
    pair = text[position : position + 2]
    return len(pair) == 2 and all(digit in _HEX_DIGITS for digit in pair)


def _flush_utf8(pending: bytearray, start: int, chars: list[str]) -> int:
    """Decode the collected `\\XX` bytes into `chars`, empty `pending`, and return len(chars)."""
    try:
        chars.append(pending.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DNSyntaxError("hex escapes in DN value are not valid UTF-8", start) from error
    pending.clear()
    return len(chars)
