"""Report sections: one renderer per check, registered by check name.

A renderer takes a check's :class:`~aisec.core.check.Result` and the run, and returns an HTML
fragment (a ``<section>``); figures are inlined. A check without a renderer gets a generic
table of its measurements.

Renderers live in the one registry (:mod:`aisec.core.registry`, family ``section``, keyed by check
name), so a plugin that adds a check can add its section the same way, and ``aisec plugins`` lists
them. This package only imports core; core imports it by name, on a lookup in the family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape

from aisec.core import registry
from aisec.core.check import Summary

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run

SectionRenderer = Callable[["Result", "Run"], str]


class _Sections(Mapping[str, SectionRenderer]):
    """``check name -> renderer``: a live view of the registry's ``section`` family."""

    def __getitem__(self, check: str) -> SectionRenderer:
        for info in registry.methods("section"):
            if info.name == check:
                return info.obj  # type: ignore[no-any-return]
        raise KeyError(check)

    def __iter__(self) -> Iterator[str]:
        return iter([m.name for m in registry.methods("section")])

    def __len__(self) -> int:
        return len(registry.methods("section"))


SECTIONS: Mapping[str, SectionRenderer] = _Sections()
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
    """Decorator: register ``fn`` as the report section of the check ``check`` (registry family ``section``)."""
    return registry.register("section", check)


def templates() -> Environment:
    """The report templates, HTML-escaped: names, texts and class labels come from user files.

    The templates are named ``*.html.j2``, which jinja2's default ``select_autoescape()`` does not
    recognise as HTML — so the extension is listed explicitly; pre-rendered HTML is marked ``|safe``.
    """
    return Environment(loader=PackageLoader("aisec", "report/templates"),
                       autoescape=select_autoescape(enabled_extensions=("html.j2", "html", "htm", "xml")))


def render_template(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)
