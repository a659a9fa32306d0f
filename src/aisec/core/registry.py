"""Registries of attacks and checks, filled by decorators and, lazily, by plugins.

Third-party packages register through the entry-point group ``aisec.plugins``: each entry point
names a module that is imported on first lookup (its decorators do the registering). A plugin that
fails to load is remembered with its error and shown by ``aisec plugins`` — never swallowed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, TypeVar

from aisec.core.errors import ConfigError
from aisec.core.types import Capability, Norm

T = TypeVar("T")


class AttackKind(StrEnum):
    """How an attack's budget works.

    fixed_eps: finds an adversarial example inside a given eps-ball (FGSM, PGD);
    min_norm: finds the smallest perturbation it can (C&W, DeepFool, JSMA), so robust accuracy at
    any eps follows from one run.
    """

    FIXED_EPS = "fixed_eps"
    MIN_NORM = "min_norm"


@dataclass(frozen=True)
class AttackInfo:
    name: str
    cls: type[Any]
    requires: frozenset[Capability]
    norms: frozenset[Norm]
    targeted: bool
    kind: AttackKind
    summary: str
    paper: str = ""


@dataclass(frozen=True)
class CheckInfo:
    name: str
    cls: type[Any]
    summary: str
    requires: frozenset[Capability] = field(default_factory=frozenset)


ATTACKS: dict[str, AttackInfo] = {}
CHECKS: dict[str, CheckInfo] = {}
PLUGIN_ERRORS: dict[str, str] = {}
# Every module in these packages is imported on first lookup, so a new attack file registers itself.
_BUILTIN_PACKAGES = ("aisec.attacks.evasion", "aisec.attacks.text", "aisec.checks")
_loaded = False


def register_attack(
    name: str,
    *,
    requires: set[Capability] | frozenset[Capability],
    norms: set[Norm] | frozenset[Norm],
    targeted: bool,
    kind: AttackKind,
    paper: str = "",
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register an evasion attack under ``name`` (lowercase)."""

    def deco(cls: type[T]) -> type[T]:
        if name in ATTACKS and ATTACKS[name].cls is not cls:
            raise ConfigError(f"attack name '{name}' is registered twice ({ATTACKS[name].cls} and {cls})")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name
        ATTACKS[name] = AttackInfo(
            name, cls, frozenset(requires), frozenset(norms), targeted, kind, summary, paper
        )
        return cls

    return deco


def register_check(name: str, *, requires: set[Capability] | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a check under ``name``."""

    def deco(cls: type[T]) -> type[T]:
        if name in CHECKS and CHECKS[name].cls is not cls:
            raise ConfigError(f"check name '{name}' is registered twice")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name
        CHECKS[name] = CheckInfo(name, cls, summary, frozenset(requires or set()))
        return cls

    return deco


def load_plugins() -> None:
    """Import the built-in attack/check modules and every ``aisec.plugins`` entry point, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _BUILTIN_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    for ep in entry_points().select(group="aisec.plugins"):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the others; it is reported
            PLUGIN_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"


def get_attack(name: str) -> AttackInfo:
    load_plugins()
    key = name.lower()
    if key not in ATTACKS:
        raise ConfigError(f"unknown attack '{name}'; known: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[key]


def get_check(name: str) -> CheckInfo:
    load_plugins()
    key = name.lower()
    if key not in CHECKS:
        raise ConfigError(f"unknown check '{name}'; known: {', '.join(sorted(CHECKS))}")
    return CHECKS[key]
