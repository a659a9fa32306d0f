"""Measurement parameters in words for people (the reports' evidence tables), not Python reprs.

``{"attack": "badnets", "trigger": {"kind": "patch", "size": 3}, "eps": 8/255}`` reads
``attack badnets · trigger: patch, size 3 · eps 8/255``: no braces, quotes or ``=``. The words are
:func:`aisec.core.words.plain_params`'s, the console's, with ``·`` between parameters; switches that are off,
and bookkeeping (input scaling), are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aisec.core.words import plain_params

#: parameters every record of a run shares or that only machines read
_HIDDEN = frozenset({"quantize", "input_scaling"})


def params_words(p: Mapping[str, Any]) -> str:
    """A measurement's parameters in words, ``·``-separated."""
    return plain_params(p, sep=" · ", skip_off=True, hidden=_HIDDEN)
