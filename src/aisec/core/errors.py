"""Exceptions raised by aisec.

Every error aisec raises on purpose derives from :class:`AisecError`, so callers can catch one type.
Messages say what was expected, what was given and a way forward.

::

    AisecError
    ├── ConfigError          a plan, flag or parameter is invalid
    ├── DataError            a dataset is missing, corrupt, or holds values it must not
    ├── TargetError          the model under test cannot be loaded or used as asked
    │   ├── UnsafeModelError     loading would execute untrusted code without opt-in
    │   ├── CapabilityError      an attack needs something the target does not offer
    │   ├── ShapeError           input shape or class count does not match
    │   └── OutputError          the model produced NaN/inf or malformed outputs
    ├── BudgetExceeded       a black-box target's query budget is spent
    └── StoreError           evidence could not be written or read
"""

from __future__ import annotations


class AisecError(Exception):
    """Base class of every error aisec raises on purpose."""


class ConfigError(AisecError, ValueError):
    """A plan, CLI flag or parameter is invalid."""


class DataError(AisecError, ValueError):
    """A dataset is missing, corrupt, or holds values outside what was declared."""


class TargetError(AisecError):
    """The model under test cannot be loaded or used as asked."""


class UnsafeModelError(TargetError):
    """Loading the model would run code from the file without the user's explicit opt-in."""


class CapabilityError(TargetError):
    """An attack or check needs a capability (e.g. gradients) the target does not offer."""


class ShapeError(TargetError, ValueError):
    """Input shape or class count of model and data disagree."""


class OutputError(TargetError):
    """The model produced NaN/inf or outputs of the wrong form."""


class BudgetExceeded(AisecError):
    """A black-box target's query budget would be exceeded."""

    def __init__(self, message: str, *, used: int, budget: int) -> None:
        super().__init__(message)
        self.used = used
        self.budget = budget


class StoreError(AisecError):
    """Evidence could not be written or read."""
