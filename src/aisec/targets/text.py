"""Text targets: a classifier that takes strings, seen by aisec through UTF-8 byte tensors.

:class:`TextPipelineTarget` wraps anything with ``predict_proba(list[str])`` — a scikit-learn
``Pipeline`` of a vectoriser and a classifier, typically — as a black-box target. ``predict``
takes the ``uint8`` byte tensors of :mod:`aisec.data.text`; :meth:`TextPipelineTarget.predict_texts`
takes strings. It offers probabilities only, so text is explained with LIME (on words).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from aisec.core.errors import CapabilityError
from aisec.core.target import TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.data.text import decode_texts, encode_texts
from aisec.targets.budget import QueryMeter
from aisec.targets.sklearn import validate_probabilities


class SupportsTextProba(Protocol):
    def predict_proba(self, texts: Any) -> Any: ...


class TextPipelineTarget:
    """A ``predict_proba(list[str])`` model as a black-box text target.

    Args:
        model: e.g. ``Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())])``.
        num_classes: number of classes.
        max_bytes: width of the byte tensors it takes (``input_shape = (max_bytes,)``).
        query_budget: hard cap on texts queried.

    >>> target = TextPipelineTarget(pipeline, num_classes=3, class_names=["a", "b", "c"])
    >>> target.predict_texts(["The while statement repeats a suite."]).shape
    torch.Size([1, 3])
    """

    def __init__(
        self,
        model: SupportsTextProba,
        *,
        num_classes: int,
        max_bytes: int = 1024,
        name: str | None = None,
        class_names: Sequence[str] | None = None,
        query_budget: int | None = None,
        digest: str = "",
    ) -> None:
        if not callable(getattr(model, "predict_proba", None)):
            raise CapabilityError(f"{type(model).__name__} has no predict_proba(list of str)")
        caps = {Capability.PROBABILITIES}
        if query_budget is not None:
            caps.add(Capability.QUERY_BUDGET)
        self.model = model
        self._spec = TargetSpec(
            name=name or type(model).__name__, modality=Modality.TEXT, input_shape=(max_bytes,),
            num_classes=num_classes, class_names=tuple(class_names) if class_names is not None else None,
            value_range=(0.0, 255.0), access=Access.BLACK, output=OutputKind.PROBABILITIES,
            capabilities=frozenset(caps), query_budget=query_budget, device="cpu", digest=digest,
        )
        self._meter = QueryMeter(self._spec.name, query_budget)

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._meter.used

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise CapabilityError(f"text target '{self._spec.name}' is a black box: it offers probabilities only")

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return encode_texts(texts, self._spec.input_shape[0])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict_texts(decode_texts(x))

    def predict_texts(self, texts: Sequence[str]) -> torch.Tensor:
        n = len(texts)
        self._meter.charge(n)
        return validate_probabilities(self.model.predict_proba(list(texts)), n, self._spec)
