"""Token authentication for every route: a bearer header, or the session cookie set by ``/?token=...``.

Cookie-authenticated unsafe requests need the double-submit CSRF token (header ``X-CSRF-Token`` or form
field ``csrf_token`` equal to the ``aisec_csrf`` cookie); bearer requests need none (a browser never adds
that header by itself).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

SESSION_COOKIE = "aisec_session"
CSRF_COOKIE = "aisec_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _same(a: str | None, b: str) -> bool:
    return a is not None and secrets.compare_digest(a.encode(), b.encode())


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, cred = value.partition(" ")
    return cred.strip() if scheme.lower() == "bearer" else None


async def check_request(request: Request, token: str) -> Response | None:
    """None when ``request`` may go on; otherwise the 401/403 (or the token-login redirect) to send."""
    if _same(_bearer(request), token):
        return None
    query_token = request.query_params.get("token")
    if query_token is not None and request.method == "GET":
        if not _same(query_token, token):
            return JSONResponse({"detail": "wrong token; use the URL `aisec serve` printed"}, status_code=401)
        rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != "token"])
        target = request.url.path + (f"?{rest}" if rest else "")
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/")
        resp.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), httponly=False, samesite="strict", path="/")
        return resp
    if not _same(request.cookies.get(SESSION_COOKIE), token):
        return JSONResponse({"detail": "authentication required: send 'Authorization: Bearer <token>' or open the "
                             "URL `aisec serve` printed"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if request.method in UNSAFE:
        csrf = request.cookies.get(CSRF_COOKIE)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            field = form.get("csrf_token")
            sent = field if isinstance(field, str) else None
        if not csrf or not _same(sent, csrf):
            return JSONResponse({"detail": "CSRF token missing or wrong: send header X-CSRF-Token equal to the "
                                 "aisec_csrf cookie"}, status_code=403)
    return None


def auth_middleware(token: str) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """An HTTP middleware refusing every unauthenticated request (API, pages, static, docs, openapi.json)."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = await check_request(request, token)
        if refused is not None:
            return refused
        return await call_next(request)

    return middleware


def csrf_token(request: Request) -> str:
    """The CSRF token a page embeds in its forms (the ``aisec_csrf`` cookie; empty for bearer clients)."""
    return request.cookies.get(CSRF_COOKIE, "")
