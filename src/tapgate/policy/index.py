"""All policies compiled together, so that a login finds every matching policy at once.

Matching policy by policy (`tapgate.policy.matching.match_policy`) calls RE2 once for each
regular expression, and with a thousand policies the Python side of those calls costs
milliseconds. Here the policies of one auth profile and attribute share one lookup table for
their exact values and one `re2.Set` each for their wildcards and regular expressions, so a
user's attribute value meets all of them in one call.

The index finds which policies match, not why. `tapgate policy explain` still goes through
`match_policy`, and the tests check that both give the same results.

RE2's set matcher reports no error when its automaton runs out of memory: it returns no match.
Each set therefore contains a pattern that matches every text. A result without that pattern
means the set failed, and the values of that set are then matched one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import re2

from tapgate.directory.base import DirectoryUser
from tapgate.errors import ObjectError, PolicyValueError
from tapgate.policy.dn import DNKey
from tapgate.policy.matching import ValueMatcher, attribute_values, compile_value, prepare_value
from tapgate.policy.model import Policy
from tapgate.policy.regex import fold_pattern

__all__ = ["MAX_PROGRAM_SIZE", "PolicyIndex", "check_program_size"]

log = logging.getLogger(__name__)

# A set's program contains every pattern of one attribute, so it gets far more memory than
# one value's limit (`tapgate.policy.regex.MAX_PROGRAM_MEMORY`, 1 MiB).
_SET_MEMORY = 64 << 20
_MATCHES_EVERYTHING = "(?s:.*)"
# The most RE2 program instructions the regular expressions of one auth profile and attribute
# may add up to. A set of 250,000 compiled in 30 ms here and matched a 5,000-character value in
# about a millisecond. Far larger sets fail to compile and fall back to one match per value.
MAX_PROGRAM_SIZE = 250_000


class _PatternSet:
    """Wildcards or regular expressions of one attribute, matched in one RE2 call."""

    def __init__(self, *, case_sensitive: bool) -> None:
        self._case_sensitive = case_sensitive
        self._patterns: list[str] = []
        self._positions: list[int] = []
        # Used to match one value at a time when the set fails.
        self._fallback: list[tuple[ValueMatcher, int]] = []
        self._set: re2.Set | None = None
        self._sentinel = -1

    def add(self, pattern: str, matcher: ValueMatcher, position: int) -> None:
        self._patterns.append(pattern)
        self._positions.append(position)
        self._fallback.append((matcher, position))

    def compile(self) -> None:
        if not self._patterns:
            return
        options = re2.Options()
        options.log_errors = False
        options.case_sensitive = self._case_sensitive
        options.max_mem = _SET_MEMORY
        compiled = re2.Set.FullMatchSet(options)
        try:
            for pattern in self._patterns:
                compiled.Add(pattern)
            self._sentinel = compiled.Add(_MATCHES_EVERYTHING)
            compiled.Compile()
        except re2.error as error:
            log.warning(
                "policy values are matched one at a time patterns=%d error=%s",
                len(self._patterns),
                error,
            )
            return
        self._set = compiled

    def collect(self, text: str, into: set[int]) -> None:
        """Add to `into` the positions of the policies whose pattern matches `text`."""
        if not self._patterns:
            return
        # NOTE: matching runs on the event loop. Patterns such as `.*a.{12}b.*` stay under the
        # size limit yet took about 250 ms here on a 1,000-character value of random a and b,
        # because RE2's automaton keeps rebuilding its states.
        found = self._set.Match(text) if self._set is not None else None
        if found is None or self._sentinel not in found:
            self._collect_one_by_one(text, into)
            return
        positions = self._positions
        for number in found:
            if number != self._sentinel:
                into.add(positions[number])

    def _collect_one_by_one(self, text: str, into: set[int]) -> None:
        for matcher, position in self._fallback:
            if position not in into and matcher.matches_folded(text):
                into.add(position)


@dataclass
class _AttributeGroup:
    """The values of every policy of one auth profile on one attribute."""

    attribute: str
    member_of: bool
    exact: dict[str, set[int]] = field(default_factory=dict)
    # `memberOf` only: exact values that name a group by its DN.
    exact_dn: dict[DNKey, set[int]] = field(default_factory=dict)
    wildcards: _PatternSet = field(default_factory=lambda: _PatternSet(case_sensitive=True))
    regexes: _PatternSet = field(default_factory=lambda: _PatternSet(case_sensitive=False))

    def add(self, value: str, matcher: ValueMatcher, position: int) -> None:
        if matcher.kind == "regex":
            self.regexes.add(fold_pattern(value[1:-1]), matcher, position)
        elif matcher.kind == "wildcard":
            # Both sides are folded already, so the wildcard set compares case-sensitively,
            # exactly as `wildcard_matches` does.
            literal = ".*".join(re2.escape(segment) for segment in matcher.segments)
            self.wildcards.add(f"(?s:{literal})", matcher, position)
        elif self.member_of and matcher.dn is not None:
            self.exact_dn.setdefault(matcher.dn, set()).add(position)
        else:
            self.exact.setdefault(matcher.collapsed, set()).add(position)

    def collect(self, values: Iterable[str], into: set[int]) -> None:
        for value in values:
            candidate = prepare_value(value, self.member_of)
            if not self.member_of:
                into.update(self.exact.get(candidate.collapsed, ()))
                self.wildcards.collect(candidate.folded, into)
                self.regexes.collect(candidate.folded, into)
                continue

            # A group matches by its DN, by its name, or, for patterns, by its whole DN.
            if candidate.dn is not None:
                into.update(self.exact_dn.get(candidate.dn, ()))
            texts = [] if candidate.name is None else [candidate.name]
            if candidate.dn is not None:
                texts.append(candidate.folded)
            if candidate.name is not None:
                into.update(self.exact.get(candidate.name, ()))
            for text in texts:
                self.wildcards.collect(text, into)
                self.regexes.collect(text, into)


class PolicyIndex:
    """The policies in priority order, with their values compiled for matching together."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies: tuple[Policy, ...] = tuple(
            sorted(policies, key=lambda policy: policy.position)
        )
        self.by_position = {policy.position: policy for policy in self.policies}
        self._by_push_profile: dict[str, list[Policy]] = {}
        for policy in self.policies:
            self._by_push_profile.setdefault(policy.push_profile, []).append(policy)
        # auth profile -> attribute in lower case -> group
        self._groups: dict[str, dict[str, _AttributeGroup]] = {}
        for policy in self.policies:
            attribute = policy.attribute.lower()
            groups = self._groups.setdefault(policy.auth_profile, {})
            group = groups.get(attribute)
            if group is None:
                group = groups[attribute] = _AttributeGroup(
                    policy.attribute, member_of=attribute == "memberof"
                )
            for value in policy.values:
                try:
                    matcher = compile_value(value)
                except PolicyValueError:
                    # Skipped as `match_policy` skips it; loading the objects logged it.
                    continue
                group.add(value, matcher, policy.position)
        for groups in self._groups.values():
            for group in groups.values():
                group.wildcards.compile()
                group.regexes.compile()

    def of_push_profile(self, name: str) -> Sequence[Policy]:
        """Return the policies that route to push profile `name`, in priority order."""
        return self._by_push_profile.get(name, [])

    def matching(self, user: DirectoryUser) -> frozenset[int]:
        """Return the positions of every policy that matches `user`."""
        found: set[int] = set()
        for group in self._groups.get(user.auth_profile, {}).values():
            values = attribute_values(user, group.attribute)
            if values:
                group.collect(values, found)
        return frozenset(found)


def check_program_size(policies: Sequence[Policy]) -> None:
    """Raise ObjectError when the regular expressions of one auth profile and attribute are
    too large together to match quickly in one set."""
    totals: dict[tuple[str, str], int] = {}
    for policy in policies:
        key = (policy.auth_profile, policy.attribute.lower())
        for value in policy.values:
            try:
                size = compile_value(value).program_size
            except PolicyValueError:
                continue
            totals[key] = totals.get(key, 0) + size
    for (auth_profile, attribute), total in totals.items():
        if total > MAX_PROGRAM_SIZE:
            raise ObjectError(
                f"policies: the regular expressions on {attribute} for auth profile "
                f"{auth_profile} compile to {total:,} RE2 instructions together, more than "
                f"the maximum of {MAX_PROGRAM_SIZE:,}; use fewer or simpler expressions "
                "(counted repeats such as {50} cost the most)"
            )
