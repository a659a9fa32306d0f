"""Reading flag values shared by several commands: comma lists and number grids (``8/255`` allowed)."""

from __future__ import annotations

import click

from aisec.core.flags import parse_number, split_list


def csv_list(value: str | None) -> list[str] | None:
    """Comma-separated names; None when not given."""
    return split_list(value)


def float_list(value: str | None, name: str) -> list[float] | None:
    """Comma-separated numbers (fractions like 8/255 are fine); a bad item is a usage error naming ``name``."""
    items = split_list(value)
    if items is None:
        return None
    out = []
    for v in items:
        try:
            out.append(parse_number(v))
        except (ValueError, ZeroDivisionError) as exc:
            raise click.BadParameter(f"'{v}' is not a number (fractions like 8/255 are fine)", param_hint=name) from exc
    return out
