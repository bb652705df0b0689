"""The Turkish catalog of the web pages is complete, current and keeps every placeholder."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import tapgate.web
from tapgate.i18n import LOCALE_DIR

WEB_DIR = Path(tapgate.web.__file__).parent
PO_FILE = LOCALE_DIR / "tr" / "LC_MESSAGES" / "web.po"
MO_FILE = PO_FILE.with_suffix(".mo")
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {
    "**/templates/**.html": {
        "extensions": "jinja2.ext.i18n",
        "trim_blocks": "true",
        "lstrip_blocks": "true",
    }
}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\w+\}")


def source_messages() -> set[str]:
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), METHODS, OPTIONS, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalog() -> dict[str, str]:
    with PO_FILE.open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


def test_every_message_is_translated() -> None:
    translated = {key for key, value in catalog().items() if value}

    missing = sorted(source_messages() - translated)

    assert missing == []


def test_catalog_has_no_stale_messages() -> None:
    stale = sorted(set(catalog()) - source_messages())

    assert stale == []


def test_translations_keep_placeholders() -> None:
    for message, translation in catalog().items():
        assert sorted(PLACEHOLDER.findall(message)) == sorted(PLACEHOLDER.findall(translation)), (
            message
        )


def test_compiled_catalog_is_current() -> None:
    # A fresh checkout writes both files within the same second, in either order. A catalog
    # edited without compiling it again is older by far more than that.
    assert MO_FILE.stat().st_mtime >= PO_FILE.stat().st_mtime - 2.0
