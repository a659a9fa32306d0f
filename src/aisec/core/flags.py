"""Command-line flags of a check, declared as data next to the check's ``Params``.

The ``assess`` command builds its options from what the registered checks declare, and hands each
check the values of its own flags (:meth:`aisec.core.check.Check.from_flags`), so the CLI never
knows a check by name. Nothing here imports click: a web form or any other front end can read the
same declarations.

>>> Flag("--poison-rates", "Poisoning: rates to sweep, e.g. 0.01,0.05.", kind="floats")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FlagKind = Literal["text", "int", "float", "floats", "list", "switch", "choice"]


@dataclass(frozen=True)
class Flag:
    """One flag. ``kind`` says how its text is read before the check sees it.

    text: a string; int, float: one number; floats: comma-separated numbers (fractions such as
    8/255 allowed); list: comma-separated names; switch: on when given; choice: one of ``choices``, or
    of the names registered in the registry family ``choices_from`` (e.g. ``explainer``), resolved when
    the front end builds its options (:meth:`options`), so a plugin's method is a valid choice too.
    """

    name: str
    help: str
    kind: FlagKind = "text"
    choices: tuple[str, ...] = ()
    short: str | None = None
    choices_from: str = ""

    def __post_init__(self) -> None:
        if not self.name.startswith("--"):
            raise ValueError(f"flag name must start with '--', got {self.name!r}")
        if self.choices and self.choices_from:
            raise ValueError(f"flag {self.name}: give choices or choices_from, not both")
        if (self.kind == "choice") != bool(self.choices or self.choices_from):
            raise ValueError(f"flag {self.name}: choices (or choices_from) go with kind 'choice' (and only with it)")

    def options(self) -> tuple[str, ...]:
        """The valid values of a choice flag: ``choices``, or the names registered in ``choices_from``."""
        if self.choices_from:
            from aisec.core.registry import names

            return tuple(names(self.choices_from))
        return self.choices

    @property
    def dest(self) -> str:
        """The keyword the value arrives under: ``--poison-rates`` → ``poison_rates``."""
        return self.name[2:].replace("-", "_")


def parse_number(text: str) -> float:
    """A number or a fraction ``a/b`` (``8/255``); :class:`ValueError` otherwise."""
    if "/" in text:
        a, b = text.split("/", 1)
        return float(a) / float(b)
    return float(text)


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,,c"`` → ``["a", "b", "c"]``; None or empty → None."""
    return [v.strip() for v in text.split(",") if v.strip()] if text else None
