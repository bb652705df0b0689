"""The nesting limit on JSON from outside, with and without the bracket-count shortcut."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapgate import jsondepth


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_limit_depth_accepted() -> None:
    assert jsondepth.loads(_nested(jsondepth.MAX_DEPTH)) is not None
    assert jsondepth.loads(_nested(jsondepth.MAX_DEPTH).encode()) is not None


def test_one_level_too_deep_refused() -> None:
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(_nested(jsondepth.MAX_DEPTH + 1))
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(_nested(jsondepth.MAX_DEPTH + 1).encode())


def test_brackets_inside_strings_do_not_count_as_levels() -> None:
    text = json.dumps({"username": "İpek[{" * 40, "groups": ["muhasebe"]})
    assert jsondepth.loads(text)["groups"] == ["muhasebe"]


def test_deep_objects_are_refused() -> None:
    text = '{"a":' * 40 + "1" + "}" * 40
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(text)


def test_recursion_past_the_interpreter_limit_is_too_deep() -> None:
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(_nested(100_000))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab[]{}şİ"),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="xy[{"), children, max_size=3)
    ),
    max_leaves=40,
)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@given(_json, st.integers(min_value=1, max_value=8))
def test_refused_exactly_when_deeper_than_the_limit(value: object, limit: int) -> None:
    text = json.dumps(value)
    if _depth(value) > limit:
        with pytest.raises(jsondepth.TooDeep):
            jsondepth.loads(text, limit)
    else:
        assert jsondepth.loads(text, limit) == value


def test_duplicate_key_is_refused_at_any_depth() -> None:
    with pytest.raises(jsondepth.DuplicateKey) as raised:
        jsondepth.loads('{"message": {"decision": "approve", "decision": "deny"}}')
    assert raised.value.key == "decision"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
def test_bytes_must_be_utf8(encoding: str) -> None:
    with pytest.raises(jsondepth.NotUtf8):
        jsondepth.loads('{"username": "ığdır"}'.encode(encoding))


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(jsondepth.NotUtf8):
        jsondepth.loads(b'{"username": "\xff"}')


def test_utf8_with_turkish_letters_is_read() -> None:
    assert jsondepth.loads('{"username": "İşçi Ğ"}'.encode()) == {"username": "İşçi Ğ"}
