"""Numbers and settings as people write them, for the console and messages (not for files).

``eps_words(8/255)`` is ``8/255``, as the user typed it, not ``0.0313725``; :func:`plain_params` turns a
measurement's or an attack's parameters into ``query budget 1000, soft labels yes`` instead of a Python
dict. Files (evidence, CSV, JSON) keep the exact values; these helpers are only for reading.

>>> eps_words(2 / 255), eps_words(0.05)
('2/255', '0.05')
>>> plain_params({"query_budget": 1000, "soft_labels": True, "trigger": {"kind": "patch", "size": 3}})
'query budget 1000, soft labels yes, trigger: patch, size 3'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: parameter names whose numbers are perturbation budgets, shown as ``k/255`` where they are one
_EPS_KEYS = frozenset({"eps", "epsilon", "eps_step", "alpha", "step_size"})


def eps_words(eps: float) -> str:
    """An eps as people give it: ``0.2`` when that is short, else ``8/255`` for a multiple of 1/255 (the 8-bit
    pixel grid), else ``0.0123``."""
    plain = f"{eps:g}"
    k = eps * 255
    if len(plain.lstrip("0.")) > 3 and eps > 0 and abs(k - round(k)) < 1e-6 * max(1.0, k):
        return f"{round(k)}/255"
    return plain


def _value(key: str, v: Any, sep: str) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "none"
    if isinstance(v, float):
        return eps_words(v) if key in _EPS_KEYS else f"{v:.4g}"
    if isinstance(v, Mapping):
        return plain_params(v)
    if isinstance(v, list | tuple):
        items = ", ".join(_value(key, x, sep) for x in v)
        # brackets only where the list's commas would run into the parameters' own separator
        return f"[{items}]" if "," in sep else items
    return str(v)


def plain_params(params: Mapping[str, Any], *, sep: str = ", ", skip_off: bool = False,
                 hidden: frozenset[str] = frozenset()) -> str:
    """``{"max_queries": 500, "targeted": False}`` → ``max queries 500, targeted no``; a nested mapping
    reads ``name: ...`` and a ``kind`` key leads its mapping (``trigger: patch, size 3``).

    The one formatter for people, console and reports alike (the reports call it through
    :func:`aisec.report.words.params_words` with ``sep=" · "``): ``skip_off`` leaves out switches that are off
    and empty values, ``hidden`` names keys never shown. Floats read to 4 significant digits, budgets
    (``eps``, ``alpha``, ...) as ``k/255`` where they are one."""
    parts = []
    for k, v in params.items():
        if k in hidden or (skip_off and (v is False or v is None or v == "" or
                                         (isinstance(v, list | tuple | Mapping) and not v))):
            continue
        name = str(k).replace("_", " ")
        if isinstance(v, Mapping):
            inner = dict(v)
            lead = [str(inner.pop("kind"))] if "kind" in inner else []
            parts.append(f"{name}: " + ", ".join(lead + ([plain_params(inner)] if inner else [])))
        elif str(k) == "kind":
            parts.append(str(v))
        else:
            parts.append(f"{name} {_value(str(k), v, sep)}")
    return sep.join(parts)
