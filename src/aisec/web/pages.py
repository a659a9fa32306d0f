"""The browser pages of ``aisec serve``: server-rendered shells whose JS talks only to ``/api/v1``.

Why a shell: every action (catalogue, preview, runs, evidence) goes through the public JSON API, so the UI
can never do what an API client cannot, and the API's auth/CSRF rules cover the UI too. Templates and
static files ship inside the wheel and are read with :mod:`importlib.resources`; plotly's bundled JS is
served from the installed ``plotly`` package (no CDN at run time).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, FunctionLoader, select_autoescape

_PKG = "aisec.web"
#: page path -> (template, title); the nav bar lists the first five
PAGES: dict[str, tuple[str, str]] = {
    "/": ("new.html", "New assessment"),
    "/runs": ("runs.html", "Runs"),
    "/compare": ("compare.html", "Compare"),
    "/evidence": ("evidence.html", "Evidence"),
}
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _load_template(name: str) -> str | None:
    """One template's text from the package's ``templates/`` folder (None: no such template)."""
    res = importlib.resources.files(_PKG).joinpath("templates", name)
    return res.read_text(encoding="utf-8") if res.is_file() else None


_ENV = Environment(loader=FunctionLoader(_load_template), autoescape=select_autoescape(["html"]))


def render(template: str, **context: Any) -> str:
    """The page ``template`` rendered with the nav bar and ``context`` (autoescaped)."""
    nav = [(path, title) for path, (_, title) in PAGES.items()]
    return _ENV.get_template(template).render(nav=nav, **context)


def plotly_js() -> Path | None:
    """The path of the installed plotly package's bundled ``plotly.min.js`` (None: plotly not installed)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def make_router(dependencies: Sequence[Callable[..., Any]] = ()) -> APIRouter:
    """The pages router; ``dependencies`` are the server's auth dependencies (token/cookie) for every route."""
    router = APIRouter(dependencies=[Depends(d) for d in dependencies], include_in_schema=False)

    def page(template: str, title: str) -> Callable[[], HTMLResponse]:
        def view() -> HTMLResponse:
            return HTMLResponse(render(template, title=title))
        return view

    for path, (template, title) in PAGES.items():
        router.add_api_route(path, page(template, title), methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/new", page("new.html", "New assessment"), methods=["GET"], response_class=HTMLResponse)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: str) -> HTMLResponse:
        return HTMLResponse(render("run.html", title=f"Run {run_id}", run_id=run_id))

    @router.get("/static/vendor/plotly.min.js")
    def vendor_plotly() -> Response:
        path = plotly_js()
        if path is None:
            raise HTTPException(404, "plotly is not installed: pip install 'aisec[web]'")
        return FileResponse(path, media_type=_STATIC_TYPES[".js"])

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        suffix = Path(name).suffix
        if "/" in name or "\\" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
            raise HTTPException(404, "no such static file")
        res = importlib.resources.files(_PKG).joinpath("static", name)
        if not res.is_file():
            raise HTTPException(404, "no such static file")
        return Response(res.read_bytes(), media_type=_STATIC_TYPES[suffix])

    return router


router = make_router()
"""The router without auth dependencies; ``create_app`` should call :func:`make_router` with its own."""
