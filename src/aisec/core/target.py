"""The model under test, behind one small protocol.

A :class:`Target` has a :class:`TargetSpec` (what it takes, what it returns, what it offers),
``predict(x) -> probabilities`` for every access level, and ``logits(x)`` — differentiable, on the
target's device — only when :attr:`Capability.GRADIENTS` is among its capabilities. Inputs are
always in the natural data space (images in [0, 1]); any normalisation is the target's business
and is declared in its spec, so attacks measure perturbations where a human would.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aisec.core.errors import CapabilityError, DataError, ShapeError
from aisec.core.types import Access, Capability, Modality, OutputKind


def check_value_range(v: tuple[float, float]) -> tuple[float, float]:
    """``v`` if it is a (low, high) range with low < high; shared by :class:`TargetSpec` and plans."""
    if not v[0] < v[1]:
        raise ValueError(f"value_range must be (low, high) with low < high, got {v}")
    return v


class Normalization(BaseModel):
    """Per-channel affine normalisation the model expects: ``(x - mean) / std``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> Normalization:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values but std has {len(self.std)}; give one per channel"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        return self


class TargetSpec(BaseModel):
    """Everything an attack or check needs to know about a target before touching it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Human-readable name, e.g. the model file name.")
    modality: Modality
    input_shape: tuple[int, ...] = Field(description="Shape of one sample, e.g. (1, 8, 8).")
    num_classes: int = Field(ge=2)
    class_names: tuple[str, ...] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    access: Access
    output: OutputKind
    capabilities: frozenset[Capability]
    normalization: Normalization | None = None
    query_budget: int | None = Field(default=None, ge=1)
    device: str = "cpu"
    digest: str = Field(default="", description="sha256 of the model file or weights.")

    @field_validator("value_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        return check_value_range(v)

    @model_validator(mode="after")
    def _names(self) -> TargetSpec:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names given for {self.num_classes} classes"
            )
        return self

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def class_name(self, k: int) -> str:
        return self.class_names[k] if self.class_names else str(k)


@runtime_checkable
class Target(Protocol):
    """The model under test.

    ``predict`` returns class probabilities of shape ``(N, num_classes)`` on ``spec.device``;
    ``logits`` is differentiable and present only with :attr:`Capability.GRADIENTS`. ``queries``
    counts the samples sent through ``predict``/``logits`` so far.
    """

    @property
    def spec(self) -> TargetSpec: ...

    @property
    def queries(self) -> int: ...

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class TextTarget(Target, Protocol):
    """A text classifier that is white box through its embedding layer.

    Attacks perturb embeddings (continuous) or token ids (discrete); ``encode`` turns strings
    into token ids on the device.
    """

    def encode(self, texts: list[str]) -> torch.Tensor: ...

    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def logits_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor: ...


class WrappedTarget:
    """A target in front of another (EOT, BPDA, a preprocessing defence, a detector, a smoothed classifier): its
    spec is the wrapped target's renamed, its queries are the wrapped target's. Subclasses add the forward."""

    def __init__(self, target: Target, name: str) -> None:
        self.target = target
        self._spec = target.spec.model_copy(update={"name": name})

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self.target.queries


def require(target: Target, needs: frozenset[Capability], *, what: str, alternatives: str = "") -> None:
    """Raise :class:`CapabilityError` unless ``target`` offers every capability in ``needs``."""
    missing = needs - target.spec.capabilities
    if missing:
        offered = ", ".join(sorted(c.value for c in target.spec.capabilities)) or "nothing"
        hint = f" Try {alternatives}." if alternatives else ""
        raise CapabilityError(
            f"{what} needs {', '.join(sorted(m.value for m in missing))}; target "
            f"'{target.spec.name}' ({target.spec.access.value} box) offers {{{offered}}}.{hint}"
        )


def check_inputs(spec: TargetSpec, x: torch.Tensor, *, what: str = "input") -> None:
    """Validate a batch against the spec: shape, finiteness and value range."""
    if tuple(x.shape[1:]) != spec.input_shape:
        raise ShapeError(
            f"{what} has per-sample shape {tuple(x.shape[1:])} but model '{spec.name}' expects "
            f"{spec.input_shape}. Resize the data or load the model with the matching input shape."
        )
    if x.is_floating_point():
        if not torch.isfinite(x).all():
            raise DataError(f"{what} contains NaN or infinite values")
        lo, hi = spec.value_range
        xmin, xmax = float(x.min()), float(x.max())
        tol = 1e-5 * (hi - lo)
        if xmin < lo - tol or xmax > hi + tol:
            raise DataError(
                f"{what} values lie in [{xmin:.4g}, {xmax:.4g}] but model '{spec.name}' declares "
                f"the range [{lo:g}, {hi:g}]. Scale the data (images: divide 8-bit pixels by 255) "
                "or declare the model's value_range."
            )
