"""Policy values compiled into matchers, and one policy matched against one user.

A policy value is read in one of three ways:

- `/.../` is a regular expression (RE2) that must match the whole attribute value;
- a value containing `*` is a wildcard over the whole value, where `*` matches any run of
  characters, `\\*` is a literal star and `\\\\` a literal backslash;
- anything else is an exact value.

All three compare folded text (see `tapgate.policy.folding`), so matching ignores case in both
Turkish and English. Exact values also ignore leading, trailing and repeated whitespace, as
LDAP's caseIgnoreMatch does for attributes such as `department`.

`memberOf` is special because its values are group DNs. An exact policy value that parses as a
DN is compared as a DN, so a same-named group in another OU does not match, and a bare name is
compared with the group's CN. A wildcard or regular expression matches a group when it matches
either its CN or its whole DN string.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from tapgate.directory.base import DirectoryUser
from tapgate.errors import PolicyValueError
from tapgate.policy.dn import DNKey, DNSyntaxError, dn_key, first_cn, looks_like_dn, parse_dn
from tapgate.policy.folding import fold
from tapgate.policy.model import Evaluation, Policy
from tapgate.policy.regex import CompiledRegex, compile_regex
from tapgate.policy.wildcard import split_wildcard, wildcard_matches

__all__ = [
    "MAX_VALUE_LENGTH",
    "ValueMatcher",
    "attribute_values",
    "compile_value",
    "match_policy",
    "prepare_value",
]

# Administrators type these values, and each one is matched on every login.
MAX_VALUE_LENGTH = 1024

# How many of a user's values an explanation quotes before it only counts the rest, because
# an Active Directory user can be a member of hundreds of groups.
_QUOTED_VALUES = 5

MatchKind = Literal["exact", "wildcard", "regex"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One attribute value of a user, prepared once for all the policy values it meets."""

    folded: str
    # `folded` with runs of whitespace collapsed, which is what exact values compare.
    collapsed: str
    # For `memberOf` only: the group DN in comparison form (None when the value is not a
    # DN), and the group's name. A value that is not a DN is its own name, because a local
    # auth profile may store plain group names.
    dn: DNKey | None = None
    name: str | None = None


# Cached because group DNs and departments repeat across users and across the policies of
# one selection.
@functools.lru_cache(maxsize=8192)
def prepare_value(value: str, member_of: bool) -> Candidate:
    """Return one attribute value of a user in the forms that policy values compare."""
    folded = fold(value)
    collapsed = " ".join(folded.split())
    if not member_of:
        return Candidate(folded, collapsed)

    key = dn_key(value)
    name = collapsed if key is None else first_cn(key)
    return Candidate(folded, collapsed, key, name)


class ValueMatcher:
    """One compiled policy value; `matches` and `matches_group` take raw attribute values."""

    __slots__ = ("dn", "dn_error", "kind", "value", "_collapsed", "_regex", "_segments")

    def __init__(
        self,
        value: str,
        kind: MatchKind,
        *,
        segments: tuple[str, ...] = (),
        regex: CompiledRegex | None = None,
    ) -> None:
        self.value = value
        self.kind = kind
        self._collapsed = " ".join(fold(value).split()) if kind == "exact" else ""
        self._segments = segments
        self._regex = regex

        # Only an exact value can name a group by DN. `dn_error` lets validation reject a
        # value that starts like a DN but does not parse, instead of reading it as a name.
        self.dn: DNKey | None = None
        self.dn_error: DNSyntaxError | None = None
        if kind == "exact" and looks_like_dn(value):
            try:
                parse_dn(value)
            except DNSyntaxError as error:
                self.dn_error = error
            self.dn = dn_key(value)

    def __repr__(self) -> str:
        return f"ValueMatcher({self.value!r}, {self.kind!r})"

    @property
    def collapsed(self) -> str:
        """An exact value folded, with runs of whitespace collapsed; empty for the others."""
        return self._collapsed

    @property
    def program_size(self) -> int:
        """The size of a regular expression's compiled RE2 program; 0 for the others."""
        return 0 if self._regex is None else self._regex.programsize

    @property
    def segments(self) -> tuple[str, ...]:
        """A wildcard's folded literal segments; empty for the others."""
        return self._segments

    def matches(self, candidate: str) -> bool:
        """Return whether one value of an ordinary attribute matches."""
        return self._matches(prepare_value(candidate, member_of=False))

    def matches_group(self, member: str) -> bool:
        """Return whether one `memberOf` value (a group DN) matches."""
        return self._matches_group(prepare_value(member, member_of=True))

    def _matches(self, candidate: Candidate) -> bool:
        if self.kind == "exact":
            return candidate.collapsed == self._collapsed
        return self.matches_folded(candidate.folded)

    def _matches_group(self, candidate: Candidate) -> bool:
        if self.dn is not None:
            return candidate.dn == self.dn

        name = candidate.name
        if self.kind == "exact":
            return name == self._collapsed
        if name is not None and self.matches_folded(name):
            return True
        return candidate.dn is not None and self.matches_folded(candidate.folded)

    def matches_folded(self, text: str) -> bool:
        """Return whether a wildcard or regular expression matches already folded text."""
        if self._regex is not None:
            return self._regex.fullmatch(text) is not None
        return wildcard_matches(self._segments, text)


# Large enough for every value the object limits allow (MAX_POLICIES x MAX_VALUES is far more,
# but real rule sets hold a few thousand), so logins do not recompile.
@functools.lru_cache(maxsize=16384)
def compile_value(value: str) -> ValueMatcher:
    """Compile one policy value into a matcher; raise PolicyValueError when it is invalid.

    Cached, because policies change rarely and every login matches them.
    """
    if not value:
        raise PolicyValueError("policy value is empty", value, 0)
    if len(value) > MAX_VALUE_LENGTH:
        raise PolicyValueError(
            f"policy value is {len(value)} characters long, more than the maximum of "
            f"{MAX_VALUE_LENGTH}",
            value,
            MAX_VALUE_LENGTH,
        )

    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        pattern = value[1:-1]
        if not pattern:
            raise PolicyValueError("regular expression '//' is empty", value, 1)
        return ValueMatcher(value, "regex", regex=compile_regex(pattern, value))

    if "*" in value:
        return ValueMatcher(value, "wildcard", segments=split_wildcard(value))

    return ValueMatcher(value, "exact")


def attribute_values(user: DirectoryUser, attribute: str) -> tuple[str, ...]:
    """Return the user's values of `attribute` (any case), empty when the user has none.

    `username` and `displayName` fall back to the fields every auth profile fills in.
    """
    values = user.attribute(attribute)
    if values:
        return values

    name = attribute.lower()
    if name == "username":
        return (user.username,)
    if name == "displayname" and user.display_name is not None:
        return (user.display_name,)
    return ()


def match_policy(policy: Policy, user: DirectoryUser) -> Evaluation:
    """Match one policy against one user and explain the outcome in words."""

    def outcome(matched: bool, explanation: str) -> Evaluation:
        return Evaluation(policy.position, policy.push_profile, matched, explanation)

    if policy.auth_profile != user.auth_profile:
        return outcome(
            False, f"auth profile {policy.auth_profile} is not the user's ({user.auth_profile})"
        )

    values = attribute_values(user, policy.attribute)
    if not values:
        return outcome(False, f"user has no attribute {policy.attribute}")

    is_member_of = policy.attribute.lower() == "memberof"
    candidates = [prepare_value(value, is_member_of) for value in values]
    invalid: list[str] = []
    for policy_value in policy.values:
        try:
            matcher = compile_value(policy_value)
        except PolicyValueError as error:
            # Validation rejects such values when a policy is saved, so this is a policy
            # stored under older rules. Skipping the value keeps logins working.
            invalid.append(f"value {policy_value!r} is skipped because it is invalid: {error}")
            continue

        matches = matcher._matches_group if is_member_of else matcher._matches
        for value, candidate in zip(values, candidates, strict=True):
            if matches(candidate):
                return outcome(True, f"{policy.attribute} {value!r} matches {policy_value!r}")

    explanation = f"{_quote_values(policy.attribute, values)} {list(policy.values)!r}"
    return outcome(False, "; ".join([explanation, *invalid]))


def _quote_values(attribute: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"{attribute} {values[0]!r} matches none of"

    quoted = ", ".join(repr(value) for value in values[:_QUOTED_VALUES])
    if len(values) > _QUOTED_VALUES:
        quoted += f" and {len(values) - _QUOTED_VALUES} more"
    return f"{attribute} values {quoted} match none of"
