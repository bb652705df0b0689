"""The HTTP application: Auth API, device API, health checks. Routes stay thin."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from tapgate import __version__
from tapgate.api.auth_routes import router as auth_router
from tapgate.api.device_routes import enrollment_router
from tapgate.api.device_routes import router as device_router
from tapgate.api.errors import install_error_handlers
from tapgate.api.hotpath import HotPaths
from tapgate.api.limits import BodyLimit
from tapgate.delivery.metrics import metrics_endpoint
from tapgate.runtime import Runtime
from tapgate.store.migrate import head_revision
from tapgate.web import install_web

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start_background()
        log.info(
            "http started listen=%s public_url=%s",
            runtime.settings.listen,
            runtime.settings.public_url,
        )
        try:
            yield
        finally:
            await runtime.close()
            log.info("http stopped")

    app = FastAPI(
        title="tapgate",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # tapgate sets up no OpenTelemetry provider, and FastAPI's check for one on every
        # request cost about 3 % of the server's CPU in the login benchmark.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(auth_router)
    app.include_router(device_router)
    app.include_router(enrollment_router)
    # Added before the web's middleware, so it sits inside the security headers and its own
    # 413 and 408 replies carry them too.
    app.add_middleware(BodyLimit)
    install_web(app, runtime)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            revision = await runtime.database.schema_revision()
        except Exception as exc:  # any failure here means "not ready", which is the answer
            log.warning("not ready error=%s", exc)
            return JSONResponse({"status": "unavailable", "error": str(exc)[:200]}, status_code=503)
        if revision != head_revision():
            return JSONResponse(
                {"status": "unavailable", "error": "schema not current"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    return app


def create_server_app(runtime: Runtime) -> ASGIApp:
    """Return what the server runs: the login's hot path in front of the FastAPI application.

    HotPaths sits outside FastAPI, so the login's requests skip Starlette's error and body-limit
    middleware as well as the routing. An unexpected error there reaches uvicorn, which logs it
    and returns 500, as Starlette's ServerErrorMiddleware does for the routes behind it.
    """
    return HotPaths(create_app(runtime), runtime=runtime)
