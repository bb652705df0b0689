"""Translations for everything a user or administrator reads: gettext catalogs in English and Turkish.

Catalogs live in `tapgate/locale/<language>/LC_MESSAGES/<domain>.po`; the compiled `.mo` beside
each is what runs. The domain `tapgate` holds the server's messages and `web` the pages of the
registration panel, hosted login and admin console. Regenerate with
`pybabel compile -d src/tapgate/locale -D DOMAIN` after editing a `.po` file; a test fails when a
`.mo` is older than its `.po`.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "tapgate"
LANGUAGES = ("en", "tr")
DEFAULT_LANGUAGE = "en"


@cache
def translations(language: str, domain: str = DOMAIN) -> gettext.NullTranslations:
    """Return the catalog of `domain` for `language` ("en" or "tr"); English is the source text."""
    if language not in LANGUAGES or language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(domain, localedir=LOCALE_DIR, languages=[language], fallback=True)


def pick_language(accept_language: str | None) -> str:
    """Choose "en" or "tr" from an HTTP Accept-Language value, by quality, English by default."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    if not ranked:
        return DEFAULT_LANGUAGE
    return sorted(ranked)[0][2]


def gettext_for(language: str, message: str) -> str:
    """Translate one message into `language`."""
    return translations(language).gettext(message)
