"""Language choice from Accept-Language, the Turkish catalog, and compiled catalogs kept fresh."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tapgate.i18n import LOCALE_DIR, gettext_for, pick_language, translations
from tapgate.web.messages import rejection_message

PICKS = [
    ("tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7", "tr"),
    ("tr-TR;q=0.9, en", "en"),
    ("en;q=0.5, tr;q=0.8", "tr"),
    ("tr", "tr"),
    ("TR-tr", "tr"),
    ("en-GB", "en"),
    ("de-DE, tr;q=0.3", "tr"),
    ("de-DE, fr;q=0.9", "en"),
    ("tr;q=0", "en"),
    ("tr;q=0, en;q=0", "en"),
    ("tr;q=abc", "en"),
    ("*", "en"),
    ("*;q=0.5, tr;q=0.1", "tr"),
    (",,;;==", "en"),
    ("türkçe lütfen", "en"),
    ("", "en"),
    (None, "en"),
    ("tr;q=0.5, en;q=0.5", "tr"),
]


@pytest.mark.parametrize(("header", "expected"), PICKS)
def test_pick_language(header: str | None, expected: str) -> None:
    assert pick_language(header) == expected


def test_turkish_catalog_translates() -> None:
    assert (
        gettext_for("tr", "Invalid username or password.") == "Kullanıcı adı veya parola geçersiz."
    )


def test_turkish_catalog_loaded() -> None:
    assert isinstance(translations("tr"), gettext.GNUTranslations)


def test_english_is_source_text() -> None:
    assert gettext_for("en", "Invalid username or password.") == "Invalid username or password."


def test_unknown_language_is_source_text() -> None:
    assert gettext_for("de", "Invalid username or password.") == "Invalid username or password."


def test_untranslated_message_unchanged() -> None:
    assert gettext_for("tr", "Bu ileti katalogda yok.") == "Bu ileti katalogda yok."


PO_FILES = sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))


def test_po_files_found() -> None:
    assert PO_FILES != []


def po_messages(path: Path) -> dict[str, str]:
    """Return the translated, non-fuzzy messages of a .po file, keyed as a .mo catalog keys them."""
    with path.open("rb") as handle:
        catalog = read_po(handle)
    messages: dict[str, str] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        prefix = f"{message.context}\x04" if message.context else ""
        if isinstance(message.id, str):
            if message.string:
                messages[f"{prefix}{message.id}"] = str(message.string)
            continue
        for index, text in enumerate(message.string or ()):
            if text:
                messages[f"{prefix}{message.id[0]}[{index}]"] = text
    return messages


def mo_messages(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    messages: dict[str, str] = {}
    # GNUTranslations has no public way to list its messages, so this reads `_catalog`, where
    # plural forms are keyed (msgid, index).
    for key, text in vars(catalog)["_catalog"].items():
        if isinstance(key, tuple):
            messages[f"{key[0]}[{key[1]}]"] = text
        elif key:
            messages[key] = text
    return messages


@pytest.mark.parametrize("po", PO_FILES, ids=lambda path: str(path.relative_to(LOCALE_DIR)))
def test_mo_compiled(po: Path) -> None:
    assert po.with_suffix(".mo").is_file(), f"run pybabel compile for {po}"


@pytest.mark.parametrize("po", PO_FILES, ids=lambda path: str(path.relative_to(LOCALE_DIR)))
def test_mo_matches_po(po: Path) -> None:
    mo = po.with_suffix(".mo")
    assert mo_messages(mo) == po_messages(po), f"{mo} is stale: run pybabel compile"


@pytest.mark.parametrize(
    ("language", "retry_after", "expected"),
    [
        ("en", 845, "Too many attempts. Try again in 15 min."),
        ("tr", 845, "Çok fazla deneme yapıldı. 15 dakika sonra yeniden deneyin."),
        ("tr", None, "Çok fazla deneme yapıldı. Birkaç dakika bekleyip yeniden deneyin."),
    ],
)
def test_rate_limited_page_names_minutes(
    language: str, retry_after: int | None, expected: str
) -> None:
    page_gettext = translations(language, "web").gettext

    assert rejection_message(page_gettext, "rate_limited", retry_after) == expected
