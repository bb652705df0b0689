"""Normalizing login names: trimmed, NFC, and case-folded for Turkish and English alike."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapgate.directory.base import normalize_username

TURKISH = "İIıiŞşĞğÜüÖöÇç"
names = st.text(alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from(TURKISH))

SAME_USER = [
    pytest.param(["Ayşe", "AYŞE", "ayşe"], "ayşe", id="ayse"),
    pytest.param(["İsmail", "ISMAIL", "ismail", "İSMAİL", "ısmaıl"], "ismail", id="ismail"),
    pytest.param(["Işık", "IŞIK", "ışık", "İŞİK"], "işik", id="isik"),
    pytest.param(["Gülşen.Öztürk", "GÜLŞEN.ÖZTÜRK"], "gülşen.öztürk", id="gulsen"),
    pytest.param(
        [unicodedata.normalize("NFD", "Ayşe Çağrı"), unicodedata.normalize("NFC", "Ayşe Çağrı")],
        "ayşe çağri",
        id="decomposed",
    ),
    pytest.param(["I\u0307smail", "\u0130smail"], "ismail", id="decomposed-dotted-i"),
    pytest.param(["  ayşe  ", "\tAyşe\n", "ayşe"], "ayşe", id="whitespace"),
    pytest.param(["Straße", "STRASSE"], "strasse", id="sharp-s"),
]


@pytest.mark.parametrize(("spellings", "expected"), SAME_USER)
def test_spellings_normalize_alike(spellings: list[str], expected: str) -> None:
    assert {normalize_username(name) for name in spellings} == {expected}


def test_inner_space_kept() -> None:
    assert normalize_username(" Ayşe Yılmaz ") == "ayşe yilmaz"


def test_result_is_nfc() -> None:
    folded = normalize_username(unicodedata.normalize("NFD", "ÇAĞRI ÖZGÜR"))
    assert unicodedata.is_normalized("NFC", folded)


def test_distinct_users_differ() -> None:
    assert normalize_username("ayşe") != normalize_username("ayse")


@pytest.mark.parametrize("name", ["Ayşe", "İsmail", "IŞIK", "  Çağrı ", "05554443322"])
def test_normalize_idempotent_examples(name: str) -> None:
    once = normalize_username(name)
    assert normalize_username(once) == once


@given(names)
def test_normalize_idempotent(name: str) -> None:
    once = normalize_username(name)
    assert normalize_username(once) == once


def test_normalize_idempotent_double_dot() -> None:
    once = normalize_username("i\u0307\u0307")
    assert normalize_username(once) == once
