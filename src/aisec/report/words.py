"""Measurement parameters in words for people (the reports' evidence tables), not Python reprs.

``{"attack": "badnets", "trigger": {"kind": "patch", "size": 3}, "eps": 0.0313725}`` reads
``attack badnets · trigger: kind patch, size 3 · eps 0.03137``: no braces, quotes or ``=``; floats
to 4 significant digits; switches that are off, and bookkeeping (input scaling), left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: parameters every record of a run shares or that only machines read
_HIDDEN = frozenset({"quantize", "input_scaling"})


def value_words(v: Any) -> str:
    """One parameter value in words."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {value_words(x)}" for k, x in v.items() if x not in (None, False, ""))
    if isinstance(v, Sequence) and not isinstance(v, str):
        return ", ".join(value_words(x) for x in v)
    return str(v)


def params_words(p: Mapping[str, Any]) -> str:
    """A measurement's parameters in words, ``·``-separated."""
    parts = []
    for k, v in p.items():
        if k in _HIDDEN or v in (False, None, "") or (isinstance(v, Sequence | Mapping) and not v):
            continue
        sep = ": " if isinstance(v, Mapping) else " "
        parts.append(f"{k.replace('_', ' ')}{sep}{value_words(v)}")
    return " · ".join(parts)
