"""Report sections: one renderer per check, registered by check name.

A renderer takes a check's :class:`~aisec.core.check.Result` and the run, and returns an HTML
fragment (a ``<section>``); figures are inlined. A check without a renderer gets a generic
table of its measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run

SectionRenderer = Callable[["Result", "Run"], str]
SECTIONS: dict[str, SectionRenderer] = {}


def register_section(check: str) -> Callable[[SectionRenderer], SectionRenderer]:
    def deco(fn: SectionRenderer) -> SectionRenderer:
        SECTIONS[check] = fn
        return fn

    return deco


def templates() -> Environment:
    """The report templates, HTML-escaped: names, texts and class labels come from user files.

    The templates are named ``*.html.j2``, which jinja2's default ``select_autoescape()`` does not
    recognise as HTML — so the extension is listed explicitly; pre-rendered HTML is marked ``|safe``.
    """
    return Environment(loader=PackageLoader("aisec", "report/templates"),
                       autoescape=select_autoescape(enabled_extensions=("html.j2", "html", "htm", "xml")))


def render_template(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)
