"""Query counting and a hard query budget, shared by the black-box targets (ONNX, HTTP).

The budget is checked *before* a model is called, so it is never overrun: a batch that would
cross it raises :class:`~aisec.core.errors.BudgetExceeded` and nothing is sent.
"""

from __future__ import annotations

from aisec.core.errors import BudgetExceeded


class QueryMeter:
    """Counts samples queried and refuses a batch that would exceed ``budget``."""

    def __init__(self, name: str, budget: int | None) -> None:
        self.name = name
        self.budget = budget
        self.used = 0

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def charge(self, n: int) -> None:
        """Reserve ``n`` queries, or raise :class:`BudgetExceeded` without charging anything."""
        if self.budget is not None and self.used + n > self.budget:
            raise BudgetExceeded(
                f"query budget of {self.budget} for '{self.name}' would be exceeded "
                f"({self.used} used, {n} more asked)",
                used=self.used,
                budget=self.budget,
            )
        self.used += n
