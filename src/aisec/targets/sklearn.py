"""Black-box targets: any object with ``predict_proba`` (scikit-learn style).

Queries are counted per sample and an optional budget is enforced before the model is called,
so a budget is never overrun. numpy conversion happens here, at the edge.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from aisec.core.errors import CapabilityError, OutputError, ShapeError
from aisec.core.target import TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.targets.budget import QueryMeter


class SupportsPredictProba(Protocol):
    def predict_proba(self, x: Any) -> Any: ...


class ProbaTarget:
    """Wrap a ``predict_proba`` model as a black-box target with query counting.

    Args:
        model: anything with ``predict_proba(array (N, D)) -> (N, K)``.
        input_shape: shape of one sample as aisec sees it; flattened before the call.
        query_budget: hard cap on samples queried; exceeding it raises :class:`BudgetExceeded`.
    """

    def __init__(
        self,
        model: SupportsPredictProba,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        name: str | None = None,
        modality: Modality = Modality.TABULAR,
        class_names: tuple[str, ...] | list[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        query_budget: int | None = None,
        flatten: bool = True,
        digest: str = "",
    ) -> None:
        if not callable(getattr(model, "predict_proba", None)):
            raise CapabilityError(
                f"{type(model).__name__} has no predict_proba; wrap it or load it as a torch module"
            )
        caps = {Capability.PROBABILITIES}
        if query_budget is not None:
            caps.add(Capability.QUERY_BUDGET)
        self.model = model
        self.flatten = flatten
        self._spec = TargetSpec(
            name=name or type(model).__name__,
            modality=modality,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
            value_range=value_range,
            access=Access.BLACK,
            output=OutputKind.PROBABILITIES,
            capabilities=frozenset(caps),
            query_budget=query_budget,
            device="cpu",
            digest=digest,
        )
        self._meter = QueryMeter(self._spec.name, query_budget)

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._meter.used

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise CapabilityError(
            f"target '{self._spec.name}' is a black box: it offers probabilities, not gradients"
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        self._meter.charge(n)  # raises before the model is called if the budget would be crossed
        arr = x.detach().cpu().numpy()
        if self.flatten:
            arr = arr.reshape(n, -1)
        return validate_probabilities(self.model.predict_proba(arr), n, self._spec)


def validate_probabilities(raw: Any, n: int, spec: TargetSpec) -> torch.Tensor:
    """``predict_proba`` output as a float tensor, or a clear error for a wrong shape or NaN/inf."""
    p = np.asarray(raw, dtype=np.float32)
    if p.shape != (n, spec.num_classes):
        raise ShapeError(
            f"predict_proba of '{spec.name}' returned shape {p.shape}; expected ({n}, {spec.num_classes})"
        )
    if not np.isfinite(p).all():
        raise OutputError(f"model '{spec.name}' returned NaN/inf probabilities")
    return torch.from_numpy(p)
