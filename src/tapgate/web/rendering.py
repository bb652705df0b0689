"""Templates, the page language, flash messages and date formatting.

The language comes from the `tapgate_lang` cookie that the language switch sets, else from the
browser's Accept-Language. Templates translate through the gettext domain `web`. The language
of the request being rendered is kept in a context variable, so concurrent requests in other
languages do not interfere.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from babel.dates import format_datetime
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from tapgate.i18n import DEFAULT_LANGUAGE, LANGUAGES, pick_language, translations
from tapgate.web.security import CSRF_FIELD, csrf_token

DOMAIN = "web"
LANGUAGE_COOKIE = "tapgate_lang"
LANGUAGE_NAMES = {"en": "English", "tr": "Türkçe"}
_FLASH_KEY = "flash"

_language: ContextVar[str] = ContextVar("tapgate_web_language", default=DEFAULT_LANGUAGE)


def catalog(language: str) -> gettext.NullTranslations:
    return translations(language, DOMAIN)


def _gettext(message: str) -> str:
    return catalog(_language.get()).gettext(message)


def _ngettext(singular: str, plural: str, count: int) -> str:
    return catalog(_language.get()).ngettext(singular, plural, count)


def request_language(request: Request) -> str:
    """Return "en" or "tr" for this request: the chosen cookie first, then Accept-Language."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return pick_language(request.headers.get("accept-language"))


def translator(request: Request) -> Callable[[str], str]:
    """Return gettext for the request's language, for messages built in Python."""
    return catalog(request_language(request)).gettext


def format_time(value: datetime | None, style: str = "medium") -> str:
    """Format a UTC time for the page language, e.g. "2 Jan 2026, 13:45:00 UTC"."""
    if value is None:
        return ""
    return (
        format_datetime(value.astimezone(UTC), style, tzinfo=UTC, locale=_language.get()) + " UTC"
    )


def _build_environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("tapgate.web", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    environment.filters["time"] = format_time
    return environment


ENVIRONMENT = _build_environment()


def flash(request: Request, kind: str, message: str) -> None:
    """Keep a message ("success", "error" or "info") for the next page this session renders."""
    messages = list(request.session.get(_FLASH_KEY) or [])
    messages.append([kind, message])
    request.session[_FLASH_KEY] = messages[-5:]


def _take_flashes(request: Request) -> list[tuple[str, str]]:
    messages = request.session.pop(_FLASH_KEY, None) or []
    return [(str(kind), str(text)) for kind, text in messages]


def page_path(request: Request) -> str:
    """Return the local address that shows this page again, for the language switch.

    A page rendered in response to a POST cannot be fetched with GET, so it points back to the
    page that sent the form (the same-origin Referer), or to the panel's start.
    """
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/register"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render `template` in the request's language as a no-store HTML response."""
    language = request_language(request)
    token = _language.set(language)
    try:
        page = ENVIRONMENT.get_template(template).render(
            {
                "request": request,
                "lang": language,
                "languages": LANGUAGE_NAMES,
                "csrf_field": CSRF_FIELD,
                "csrf_token": csrf_token(request),
                "flashes": _take_flashes(request),
                "current_path": page_path(request),
                **(context or {}),
            }
        )
    finally:
        _language.reset(token)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})
