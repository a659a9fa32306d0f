"""Checks and their results.

A check answers one security question about a target on a dataset (``robustness``,
``poisoning``, ...). It never prints: progress goes through a callback, and what it measured comes
back as a :class:`Result` — measurements that become evidence records, per-sample tables, a
typed :class:`Summary` for reports and the console, and warnings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeAlias

import numpy as np
from pydantic import BaseModel, ConfigDict

from aisec.core.artefacts import Artefact
from aisec.core.dataset import Dataset
from aisec.core.errors import ShapeError
from aisec.core.evidence import Measurement
from aisec.core.progress import Progress
from aisec.core.stats import Interval
from aisec.core.target import Target


@dataclass(frozen=True)
class ConsoleTable:
    """A table for the console as plain text: a title, column headers and rows of cells.

    What a :meth:`Summary.console_lines` returns besides lines of text; the CLI decides how to draw it
    (checks never import a console library).
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


ConsoleLine: TypeAlias = str | ConsoleTable
"""One item of a check's console summary: a line of plain text (no markup) or a table."""


class Summary(BaseModel):
    """What a check found, in the shape reports and the console read: typed fields, serialised as JSON.

    Each check defines its own subclass next to itself (``RobustnessSummary`` in
    :mod:`aisec.checks.robustness`, ``PoisoningSummary``, ...), nested parts included, and the report,
    the CLI and ``result.json`` read it: the report by attribute (``s.clean_accuracy``, ``p.ci.low``),
    ``result.json`` through :meth:`to_json`, whose output is the JSON the free-form dicts used to give
    (field order is key order). A summary also answers read-only mapping access — ``s["curves"]``,
    ``s.get("clever")``, ``"x" in s``, ``keys()``, iteration over keys — delegating to its fields, so code
    written against the old dicts keeps working. A field left out of the JSON (``exclude_if``) is absent
    from the mapping as well, as the key was from the dict.

    Subclasses are frozen and forbid unknown fields (a typo fails when the check runs, not in the report).
    A check without a model of its own (a plugin) may still hand :class:`Result` a plain dict: it is
    wrapped in :class:`DictSummary`, whose keys become extra fields. ``Result.summary`` is therefore always
    a ``Summary`` — one type for every reader, rather than ``Summary | dict`` that each of them would have
    to branch on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- read-only mapping access, delegating to fields ------------------------------------------

    def _present(self, key: str) -> bool:
        info = type(self).model_fields.get(key)
        if info is None:
            return self.__pydantic_extra__ is not None and key in self.__pydantic_extra__
        if info.exclude is True:
            return False
        return info.exclude_if is None or not info.exclude_if(getattr(self, key))

    def keys(self) -> list[str]:
        """The keys of the JSON this summary writes: its fields, then any extra ones, in order."""
        extra = list(self.__pydantic_extra__ or ())
        return [k for k in type(self).model_fields if self._present(k)] + extra

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or not self._present(key):
            raise KeyError(key)
        if key in type(self).model_fields:
            return getattr(self, key)
        assert self.__pydantic_extra__ is not None
        return self.__pydantic_extra__[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` when the summary has no such key."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._present(key)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # a mapping's keys, not pydantic's pairs
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    # -- output ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON values (numpy values as plain numbers, non-finite floats as null): what
        ``result.json`` holds under ``checks.<name>.summary``."""
        out: dict[str, Any] = jsonable(self.model_dump())
        return out

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """What ``aisec assess`` prints for this check: plain text lines and tables, no markup.

        The default, for a check without lines of its own, is one line per measurement (metric,
        parameters, value and interval). ``model`` and ``dataset`` name what was assessed.
        """
        from aisec.core.words import plain_params

        lines: list[ConsoleLine] = []
        for m in result.measurements:
            ci = f" ({m.interval.low:.3f}–{m.interval.high:.3f})" if m.interval else ""
            params = f" ({plain_params(m.parameters)})" if m.parameters else ""
            lines.append(f"{m.metric}{params}: {m.value:.4g}{ci}")
        return lines

    @staticmethod
    def of(value: Summary | Mapping[str, Any]) -> Summary:
        """``value`` if it is a summary, else a :class:`DictSummary` holding the mapping's keys."""
        if isinstance(value, Summary):
            return value
        return DictSummary.model_validate({str(k): v for k, v in value.items()})


class DictSummary(Summary):
    """The summary of a check without a model of its own: the keys of the dict it returned, as extras."""

    model_config = ConfigDict(frozen=True, extra="allow")


class IntervalSummary(Summary):
    """A confidence interval inside a summary (``ci.low`` or ``ci["low"]``): :class:`Interval`'s fields."""

    low: float
    high: float
    level: float = 0.95
    method: str

    @classmethod
    def from_interval(cls, interval: Interval) -> IntervalSummary:
        return cls(low=interval.low, high=interval.high, level=interval.level, method=interval.method)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values turned into JSON ones (non-finite floats become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


@dataclass
class Result:
    """What one check measured.

    ``summary`` is a :class:`Summary`; a plain dict given here (a plugin check without a summary model)
    becomes a :class:`DictSummary` with the same keys (type-checked code says ``Summary.of(d)``).
    ``artefacts`` are the files the check produced (adversarial examples, images, data, a model); the run
    writes them under ``artefacts/`` of its folder when it records the result (:mod:`aisec.core.artefacts`).
    """

    check: str
    measurements: list[Measurement]
    params: dict[str, Any]
    summary: Summary = field(default_factory=DictSummary)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    artefacts: list[Artefact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    threats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.summary, Summary):
            self.summary = Summary.of(self.summary)

    def measurement(self, metric: str, **where: Any) -> Measurement:
        """The first measurement with this metric id whose parameters match ``where``."""
        for m in self.measurements:
            if m.metric == metric and all(m.parameters.get(k) == v for k, v in where.items()):
                return m
        raise KeyError(f"no measurement {metric} with {where}")


def require_same_classes(target: Target, data: Dataset, *, role: str = "dataset") -> None:
    """Raise :class:`ShapeError` unless the data has as many classes as the model has outputs."""
    spec, info = target.spec, data.info
    if info.num_classes != spec.num_classes:
        raise ShapeError(
            f"{role} '{info.name}' has {info.num_classes} classes but model '{spec.name}' has "
            f"{spec.num_classes} outputs (expected {spec.num_classes}, got {info.num_classes})"
        )


class Check(Protocol):
    """``run(target, data, params) -> Result``; ``Params`` is the pydantic model of its options."""

    Params: ClassVar[type[BaseModel]]

    def run(self, target: Target, data: Dataset, params: Any, *, progress: Progress) -> Result: ...
