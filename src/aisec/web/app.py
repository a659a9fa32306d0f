"""``create_app(settings)``: the FastAPI app of ``aisec serve`` (API, the UI pages, security headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from aisec.core.errors import AisecError
from aisec.web import pages
from aisec.web.api import build_router
from aisec.web.auth import auth_middleware
from aisec.web.runs import RunManager, RunNotFound
from aisec.web.settings import ServeSettings, is_loopback

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(settings: ServeSettings, *, manager: RunManager | None = None) -> FastAPI:
    """The app; its :class:`RunManager` (``app.state.manager``) stops its workers when the app shuts down."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    runs = manager or RunManager(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        runs.close()

    app = FastAPI(title="aisec serve", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.manager = runs
    app.include_router(build_router(settings, runs))
    app.include_router(pages.make_router())  # the auth middleware below guards the pages like the API

    @app.exception_handler(RunNotFound)
    async def not_found(request: Request, exc: RunNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(AisecError)
    async def aisec_error(request: Request, exc: AisecError) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(exc).split())[:500]}, status_code=422)

    app.middleware("http")(auth_middleware(settings.token))

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if not settings.allow_remote and host and not is_loopback(host) and host != "testserver":
            return JSONResponse({"detail": f"host '{host}' refused: this server answers on loopback only"},
                                status_code=400)
        resp = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        # the run page shows the report in a sandboxed same-origin iframe; everything else is never framed
        resp.headers["X-Frame-Options"] = "SAMEORIGIN" if "frame-ancestors 'self'" in resp.headers.get(
            "Content-Security-Policy", "") else "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    return app
