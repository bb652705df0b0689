"""Case folding for Turkish and English policy values."""

from __future__ import annotations

import unicodedata

import pytest

from tapgate.policy.folding import fold

EQUAL = [
    ("Bilgi İşlem", "BİLGİ İŞLEM"),
    ("Bilgi İşlem", "bilgi işlem"),
    ("BİLGİ İŞLEM", "bilgi işlem"),
    ("IT", "it"),
    ("I", "ı"),
    ("İ", "i"),
    ("I", "i"),
    ("İ", "ı"),
    ("Ayşe Yılmaz", "AYŞE YILMAZ"),
    ("Ayşe Yılmaz", "ayşe yilmaz"),
    ("Güneş Öztürk", "GÜNEŞ ÖZTÜRK"),
    ("Ağaoğlu", "AĞAOĞLU"),
    ("Çağrı", "ÇAĞRI"),
    ("Straße", "STRASSE"),
    # Decomposed input: s + combining cedilla, I + combining dot above.
    ("Ayşe", "Ays\u0327e"),
    ("İrem", "I\u0307rem"),
    # What str.lower() makes of İ.
    ("İrem", "i\u0307rem"),
]

DIFFERENT = [
    ("Bilgi İşlem", "Bilgi Islem"),
    ("Ayşe", "Ayse"),
    ("Ağa", "Aga"),
    ("Öztürk", "Ozturk"),
    ("IT", "IT "),
    ("Finans", "Finance"),
]


@pytest.mark.parametrize(("left", "right"), EQUAL)
def test_fold_equal(left: str, right: str) -> None:
    assert fold(left) == fold(right)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_fold_different(left: str, right: str) -> None:
    assert fold(left) != fold(right)


@pytest.mark.parametrize("text", ["İ", "ı", "I", "i", "i\u0307"])
def test_fold_i_forms_are_ascii_i(text: str) -> None:
    assert fold(text) == "i"


def test_fold_returns_nfc() -> None:
    folded = fold("AYS\u0327E")
    assert unicodedata.is_normalized("NFC", folded)


def test_fold_empty() -> None:
    assert fold("") == ""
