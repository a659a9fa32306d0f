"""What every membership-inference attack shares: the task it scores, its result, its registry.

A membership-inference attack turns the target's behaviour on candidate records into one score per
record, higher meaning "more likely a training member". It never thresholds: the metrics in
:mod:`aisec.metrics.membership` judge the scores over all thresholds (ROC AUC, TPR at low FPR).

An attack module holds one class with a nested ``Params`` model and
``run(task, params) -> MembershipScores``, registered with :func:`register_inference_attack`.
The :class:`MembershipTask` carries the members and non-members, the target, an optional
:class:`~aisec.models.recipe.TrainingRecipe` and caches that attacks share: the target's
log-probabilities are queried once, and reference models trained once serve LiRA (online and
offline) and RMIA alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from pydantic import BaseModel

from aisec.core import registry
from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import InferenceInfo
from aisec.core.target import Target, require
from aisec.core.types import Capability, OutputKind
from aisec.models.recipe import ModelStack, TrainingRecipe

T = TypeVar("T")


InferenceAttackInfo = InferenceInfo
"""The registry's facts of a membership-inference attack (:class:`aisec.core.registry.InferenceInfo`)."""


class _InferenceView(Mapping[str, InferenceInfo]):
    """``name -> info`` of the registered membership-inference attacks (a live view of the registry)."""

    def __getitem__(self, key: str) -> InferenceInfo:
        for info in registry.methods("inference"):
            if info.name == key and isinstance(info, InferenceInfo):
                return info
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([m.name for m in registry.methods("inference")])

    def __len__(self) -> int:
        return len(registry.methods("inference"))


INFERENCE_ATTACKS: Mapping[str, InferenceInfo] = _InferenceView()


def register_inference_attack(
    name: str, *, requires: set[Capability] | frozenset[Capability] = frozenset(),
    needs_recipe: bool = False, labels_only: bool = False, paper: str = "",
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a membership-inference attack under ``name`` (family ``inference``)."""
    return registry.register("inference", name, requires=requires, needs_recipe=needs_recipe,
                             labels_only=labels_only, paper=paper)


def inference_attacks() -> list[InferenceInfo]:
    """Every registered membership-inference attack, sorted by name (for listings such as ``aisec plugins``)."""
    return registry.methods("inference")  # type: ignore[return-value]


def get_inference_attack(name: str) -> InferenceInfo:
    """Look up an attack by name (``-`` and ``_`` alike), importing every module of this package on first use."""
    return registry.get("inference", name)


class InferenceAttack(Protocol):
    Params: ClassVar[type[BaseModel]]

    def run(self, task: MembershipTask, params: Any) -> MembershipScores: ...


@dataclass
class MembershipScores:
    """One score per member and per non-member (higher = more likely a member), on the CPU.

    ``nonmember_index`` selects which non-members were scored when an attack had to hold some out
    (the shadow-model attack keeps its shadow data apart); ``None`` means all of them.
    """

    members: torch.Tensor
    nonmembers: torch.Tensor
    nonmember_index: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class MembershipTask:
    """Members, non-members and everything attacks share about them (tensors on the CPU)."""

    target: Target
    x_in: torch.Tensor
    y_in: torch.Tensor
    x_out: torch.Tensor
    y_out: torch.Tensor
    recipe: TrainingRecipe | None = None
    population: tuple[torch.Tensor, torch.Tensor] | None = None
    reference_models: int = 16
    shadow_models: int = 8
    batch_size: int = 256
    seed: int = 0
    progress: Progress = no_progress
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.target.spec.num_classes

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Target log-probabilities ``(N, C)`` in float64, from logits when the target has them
        (a saturated float32 softmax would turn confident members' scores into ±inf)."""
        spec = self.target.spec
        out = []
        use_logits = Capability.LOGITS in spec.capabilities and spec.output is not OutputKind.LABELS
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                xb = x[i : i + self.batch_size].to(spec.device)
                if use_logits:
                    out.append(torch.log_softmax(self.target.logits(xb).double(), 1).cpu())
                else:
                    p = self.target.predict(xb).double().cpu()
                    out.append(torch.log(p.clamp_min(1e-300)))
        return torch.cat(out)

    def target_log_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached ``(members, non-members)`` log-probabilities of the target."""
        if "target_lp" not in self.cache:
            self.cache["target_lp"] = (self.log_probs(self.x_in), self.log_probs(self.x_out))
        return self.cache["target_lp"]  # type: ignore[no-any-return]

    def target_predictions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached predicted labels of the members and non-members. When the target exposes scores
        they are the argmax of :meth:`target_log_probs` (argmax of the logits, as ART's rule-based
        attack takes it), so the threshold attacks and the accuracies share one forward pass per record."""
        if "target_pred" not in self.cache:
            spec = self.target.spec
            caps = spec.capabilities
            if spec.output is not OutputKind.LABELS and Capability.LABELS_ONLY not in caps and (
                Capability.LOGITS in caps or Capability.PROBABILITIES in caps
            ):
                lp_in, lp_out = self.target_log_probs()
                self.cache["target_pred"] = (lp_in.argmax(1), lp_out.argmax(1))
            else:
                self.cache["target_pred"] = (self.target_labels(self.x_in), self.target_labels(self.x_out))
        return self.cache["target_pred"]  # type: ignore[no-any-return]

    def target_labels(self, x: torch.Tensor) -> torch.Tensor:
        """The target's predicted labels ``(N,)`` (all a labels-only target reveals)."""
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                out.append(self.target.predict(x[i : i + self.batch_size].to(self.target.spec.device)).argmax(1).cpu())
        return torch.cat(out)

    def need_recipe(self, what: str) -> TrainingRecipe:
        if self.recipe is None:
            raise ConfigError(
                f"{what} trains models like the target and needs its training recipe: give --mia-recipe ARCH "
                "(a plan's recipe, aisec.models.recipe.TrainingRecipe in Python), or choose attacks that need "
                "none: loss, confidence, gap, label_only"
            )
        return self.recipe

    def reference_stack(self) -> tuple[ModelStack, torch.Tensor]:
        """Reference models for LiRA/RMIA, trained once: each on a random half of members ∪
        non-members such that every record is IN for exactly half of them. Returns the stack
        and the ``(K, n_in + n_out)`` IN mask."""
        if "reference" not in self.cache:
            recipe = self.need_recipe("LiRA/RMIA")
            k = self.reference_models
            x = torch.cat([self.x_in, self.x_out])
            y = torch.cat([self.y_in, self.y_out])
            keep = balanced_halves(k, x.shape[0], seed=self.seed + 7919)
            stack = recipe.train_many(
                x, y, keep, num_classes=self.num_classes, seed=recipe.seed + 1000,
                device=self.target.spec.device, progress=self.progress, task=f"training {k} reference models",
            )
            self.cache["reference"] = (stack, keep)
        return self.cache["reference"]  # type: ignore[no-any-return]

    def reference_log_probs(self, augment: str = "none") -> torch.Tensor:
        """Reference models' log-probabilities on members then non-members: ``(K, N, C)``."""
        key = f"reference_lp:{augment}"
        if key not in self.cache:
            stack, _ = self.reference_stack()
            x = augmentation(torch.cat([self.x_in, self.x_out]), augment)
            self.cache[key] = torch.log_softmax(stack.logits(x, batch_size=self.batch_size * 4).double(), -1)
        return self.cache[key]  # type: ignore[no-any-return]


def require_for(task: MembershipTask, info: InferenceAttackInfo) -> None:
    """Raise a clear CapabilityError when the target cannot serve the attack."""
    require(task.target, info.requires, what=f"membership attack '{info.name}'",
            alternatives="'gap' or 'label_only', which need predicted labels only")


def balanced_halves(k: int, n: int, *, seed: int) -> torch.Tensor:
    """A ``(k, n)`` IN mask where each column has exactly ⌊k/2⌋ True (each record is IN for half the
    models, Carlini et al.'s design) — every record gets both IN and OUT models for k ≥ 2."""
    if k < 2:
        raise ConfigError(f"at least 2 reference/shadow models are needed, got {k}")
    g = torch.Generator().manual_seed(seed)
    return torch.argsort(torch.rand(k, n, generator=g), dim=0) < k // 2


def true_class(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``lp[..., y]`` for log-probabilities ``(..., N, C)`` and labels ``(N,)``."""
    idx = y.view(*([1] * (lp.ndim - 2)), -1, 1).expand(*lp.shape[:-1], 1)
    return lp.gather(-1, idx).squeeze(-1)


def logit_confidence(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic φ = log p_y − log Σ_{y'≠y} p_{y'} from log-probabilities, stably."""
    onehot = torch.zeros_like(lp, dtype=torch.bool)
    onehot.scatter_(-1, y.view(*([1] * (lp.ndim - 2)), -1, 1).expand(*lp.shape[:-1], 1), True)
    others = lp.masked_fill(onehot, -torch.inf).logsumexp(-1)
    phi = true_class(lp, y) - others
    return phi.clamp(-1e4, 1e4)


def augmentation(x: torch.Tensor, name: str) -> torch.Tensor:
    """Query augmentations for images ``(N, C, H, W)``: none, hflip, shift (one pixel right)."""
    if name == "none":
        return x
    if x.ndim != 4:
        raise ConfigError(f"augmentation '{name}' needs images (N, C, H, W); got shape {tuple(x.shape)}")
    if name == "hflip":
        return torch.flip(x, dims=[3])
    if name == "shift":  # edge pixels replicated, so values stay in the data's range
        return torch.cat([x[..., :1], x[..., :-1]], dim=-1)
    raise ConfigError(f"unknown augmentation '{name}'; use none, hflip or shift")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()
