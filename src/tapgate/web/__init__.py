"""Browser pages: the registration panel, the hosted login and the admin console.

Server-rendered Jinja2 templates with a few small plain JavaScript files, in English and
Turkish (gettext domain `web`). Extract and update the catalog with:

    pybabel extract -F src/tapgate/web/babel.cfg -k N_ -o /tmp/web.pot src/tapgate/web
    pybabel update -D web -i /tmp/web.pot -d src/tapgate/locale
    pybabel compile -D web -d src/tapgate/locale
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tapgate.runtime import Runtime


def install_web(app: FastAPI, runtime: Runtime) -> None:
    """Add the registration panel, hosted login and admin console to `app`."""
    # Imported here so that commands which only need a helper from this package (such as
    # `tapgate admin create`) do not load templates and routes.
    from tapgate.web.routes import install_routes

    install_routes(app, runtime)


__all__ = ["install_web"]
