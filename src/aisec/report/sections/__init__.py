"""Report sections: one renderer per check, registered by check name.

A renderer takes a check's :class:`~aisec.core.check.Result` and the run, and returns an HTML
fragment (a ``<section>``); figures are inlined. A check without a renderer gets a generic
table of its measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape

from aisec.core.check import Summary

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run

SectionRenderer = Callable[["Result", "Run"], str]
SECTIONS: dict[str, SectionRenderer] = {}
S = TypeVar("S", bound=Summary)


def summary_of(result: Result, cls: type[S]) -> S:
    """``result.summary`` as the check's own summary model, which a section reads by attribute.

    Raises :class:`TypeError` naming both types when the summary is something else (a check
    registered under the same name by a plugin, say), rather than failing later on a missing field.
    """
    s = result.summary
    if not isinstance(s, cls):
        raise TypeError(f"the {result.check} section reads a {cls.__name__}, but the check's summary is a "
                        f"{type(s).__name__}")
    return s


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
