"""Properties of folding and matching over generated text."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from tapgate.policy.dn import dn_key
from tapgate.policy.folding import fold
from tapgate.policy.matching import compile_value

# Letters where Turkish and English case mapping differ, mixed with ordinary text.
TURKISH = "İIıiŞşĞğÜüÖöÇç"
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from(TURKISH))
# Values that compile as exact: no star, not wrapped in slashes, not empty.
exact_value = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + " -_.,'" + TURKISH),
    min_size=1,
    max_size=40,
).filter(lambda value: value.strip() != "" and not value.startswith("/"))


def swap_case(value: str) -> str:
    return "".join(char.lower() if char.isupper() else char.upper() for char in value)


@given(text)
def test_fold_idempotent(value: str) -> None:
    assert fold(fold(value)) == fold(value)


@given(text)
def test_fold_ignores_upper(value: str) -> None:
    assert fold(value.upper()) == fold(value)


@given(text)
def test_fold_ignores_lower(value: str) -> None:
    assert fold(value.lower()) == fold(value)


@given(text)
def test_star_matches_any_value(value: str) -> None:
    assert compile_value("*").matches(value)


@given(text)
def test_star_matches_any_group(value: str) -> None:
    assert compile_value("*").matches_group(value)


@given(exact_value)
def test_exact_matches_itself(value: str) -> None:
    assert compile_value(value).matches(value)


@given(exact_value)
def test_exact_matches_upper(value: str) -> None:
    assert compile_value(value).matches(value.upper())


@given(exact_value)
def test_exact_matches_lower(value: str) -> None:
    assert compile_value(value).matches(value.lower())


@given(exact_value)
def test_exact_matches_swapped_case(value: str) -> None:
    assert compile_value(value).matches(swap_case(value))


@given(exact_value)
def test_prefix_wildcard_matches(value: str) -> None:
    assert compile_value(value.replace("\\", "") + "*").matches(value.upper() + "tail")


@given(exact_value)
def test_escaped_regex_matches_itself(value: str) -> None:
    escaped = "".join(f"\\{char}" if not char.isalnum() and char != " " else char for char in value)
    assert compile_value(f"/{escaped}/").matches(swap_case(value))


@given(st.text(alphabet=st.sampled_from("ABCabcİIıi ,=+\\#"), max_size=30))
def test_dn_key_never_raises(value: str) -> None:
    key = dn_key(value)
    assert key is None or isinstance(key, tuple)
