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
    from aisec.api import Run
    from aisec.core.check import Result

SectionRenderer = Callable[["Result", "Run"], str]
SECTIONS: dict[str, SectionRenderer] = {}


def register_section(check: str) -> Callable[[SectionRenderer], SectionRenderer]:
    def deco(fn: SectionRenderer) -> SectionRenderer:
        SECTIONS[check] = fn
        return fn

    return deco


def templates() -> Environment:
    return Environment(loader=PackageLoader("aisec", "report/templates"), autoescape=select_autoescape())


def render_template(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)
