"""Sleeper Agent: clean-label poisons crafted by gradient matching, with surrogate retraining.

Souri, Fowl, Chellappa, Goldblum, Goldstein, "Sleeper Agent: Scalable Hidden Trigger Backdoors for
Neural Networks Trained from Scratch", NeurIPS 2022, https://arxiv.org/abs/2106.08970.

Poisons are target-class training images (labels unchanged) perturbed by ``delta``,
``||delta||_inf <= eps``, so that the parameter gradient of their training loss aligns with the
gradient that would teach "source image + trigger -> target class":
``min 1 - cos(grad_theta L(f(x_p + delta), y_p), grad_theta L(f(x_s + patch), y_target))``.
Optimised with signed Adam (Adam fed the sign of the gradient) and projection onto the eps-ball,
random restarts, keeping the restart with the best alignment. Poisons are chosen as the
target-class samples with the largest parameter-gradient norm (per-sample gradients via
``torch.func.vmap``) or at random.

Surrogate retraining (the paper's default; ART's ``model_retrain``/``retraining_factor``): the
crafting steps are split into ``retrain_rounds`` rounds; after every round but the last the
surrogate is re-trained from scratch on the training set *with the current poisons in it*, and the
source gradient is recomputed on the new surrogate (fresh random trigger positions). Poisons then
match the gradients of models that have already seen them, which is what the victim will be.
Retraining needs the training set, given as ``retrain=`` (see :func:`recipe_retrainer`); without
it crafting runs on the fixed surrogate and :attr:`SleeperAgentOutcome.retrains` is 0.

All poisons are optimised in one batch: each step is one double-backward pass over the poisons
(no per-sample loop). Images ``(N, C, H, W)`` in [0, 1]; Linf; needs the model's module (white box).

>>> out = craft_sleeper_agent(model, x_poison, y_poison, x_source, trigger, target_class=1,
...                           retrain=recipe_retrainer(recipe, x_train, y_train, index))
>>> out.x, out.alignment           # poisons, cosine similarity reached
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from aisec.attacks.poisoning.badnets import PoisonTask, Trigger
from aisec.core.errors import ConfigError, ShapeError
from aisec.core.registry import register
from aisec.core.types import Modality

if TYPE_CHECKING:
    from aisec.models.recipe import TrainingRecipe

log = logging.getLogger(__name__)

Retrainer = Callable[[torch.Tensor, int], nn.Module]
"""``(current poisons, round) -> a surrogate trained on the training set holding those poisons``."""


class SleeperAgentParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    eps: float = Field(default=16 / 255, gt=0, le=1, description="Linf radius around each poison image.")
    steps: int = Field(default=100, ge=1, description="Signed-Adam steps per restart (all rounds together).")
    lr: float = Field(default=0.1, gt=0, description="Adam step size, in units of eps.")
    restarts: int = Field(default=1, ge=1, description="Random restarts; the best alignment is kept.")
    selection: Literal["gradient-norm", "random"] = "gradient-norm"
    retrain_rounds: int = Field(
        default=4, ge=1,
        description="Crafting rounds; the surrogate is retrained from scratch on the poisoned training set between "
        "rounds (paper: on; 1 = never retrain). Needs retrain= (the training set).",
    )


@dataclass
class SleeperAgentOutcome:
    """Crafted poisons and how well they match.

    ``alignment`` is the cosine similarity between the poisons' and the triggered sources' parameter
    gradients on the final surrogate (1 = perfectly aligned), ``initial_alignment`` the same for the
    clean images on the first surrogate, ``retrains`` how many times the surrogate was retrained.
    """

    x: torch.Tensor
    alignment: float
    initial_alignment: float
    retrains: int
    surrogate: nn.Module


def per_sample_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇θ L(f(x_i), y_i)‖ for every sample, batched with ``torch.func`` (no Python loop)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.sqrt(sum((g.flatten(1) ** 2).sum(1) for g in grads.values()))


def select_poisons(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int,
                   strategy: str = "gradient-norm", seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` samples to perturb."""
    if strategy == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(x.shape[0], generator=g)[:k].to(x.device)
    norms = torch.cat([per_sample_grad_norms(model, x[i : i + 256], y[i : i + 256]) for i in range(0, x.shape[0], 256)])
    return torch.argsort(norms, descending=True)[:k]


def recipe_retrainer(recipe: TrainingRecipe, x_train: torch.Tensor, y_train: torch.Tensor, index: torch.Tensor,
                     *, seed: int = 0, init: nn.Module | None = None) -> Retrainer:
    """A :data:`Retrainer` that trains with ``recipe`` on ``x_train`` whose rows ``index`` hold the poisons.

    ``init`` is the model to start from when the recipe fine-tunes (``mode="finetune"``).
    """
    if index.numel() and int(index.max()) >= x_train.shape[0]:
        raise ShapeError(f"poison index {int(index.max())} is outside the training set of {x_train.shape[0]}")

    def retrain(x_poison: torch.Tensor, round_: int) -> nn.Module:
        if x_poison.shape[0] != index.numel():
            raise ShapeError(f"{x_poison.shape[0]} poisons for {index.numel()} poison positions")
        x = x_train.clone()
        x[index.to(x.device)] = x_poison.to(x.device, x.dtype)
        return recipe.train(x, y_train, seed=seed + 1000 * (round_ + 1), init=init)

    return retrain


def _grads(model: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
           create_graph: bool) -> list[torch.Tensor]:
    return list(torch.autograd.grad(F.cross_entropy(model(x), y), weights, create_graph=create_graph))


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    dot = sum((u * v).sum() for u, v in zip(a, b, strict=True))
    na = torch.sqrt(sum((u * u).sum() for u in a))  # type: ignore[arg-type]
    nb = torch.sqrt(sum((v * v).sum() for v in b))  # type: ignore[arg-type]
    return dot / (na * nb + 1e-12)


def source_gradient(model: nn.Module, x_source: torch.Tensor, trigger: Trigger, target_class: int,
                    g: torch.Generator) -> list[torch.Tensor]:
    """∇θ L(f(x_s ⊕ trigger), target) on ``model`` (the gradient the poisons must imitate)."""
    weights = [q for q in model.parameters() if q.requires_grad]
    xs = trigger.apply(x_source, g)
    ys = torch.full((xs.shape[0],), target_class, dtype=torch.long, device=xs.device)
    return [t.detach() for t in _grads(model, weights, xs, ys, False)]


def gradient_alignment(model: nn.Module, x_poison: torch.Tensor, y_poison: torch.Tensor,
                       g_source: list[torch.Tensor]) -> float:
    """Cosine similarity between the poisons' summed-loss parameter gradient and ``g_source``."""
    weights = [q for q in model.parameters() if q.requires_grad]
    return float(_cosine(_grads(model, weights, x_poison, y_poison, False), g_source))


def craft_sleeper_agent(
    model: nn.Module, x_poison: torch.Tensor, y_poison: torch.Tensor, x_source: torch.Tensor,
    trigger: Trigger, *, target_class: int, params: SleeperAgentParams | None = None, seed: int = 0,
    retrain: Retrainer | None = None,
) -> SleeperAgentOutcome:
    """Perturb ``x_poison`` (labels ``y_poison`` unchanged) within ``eps`` (Linf); see the module docstring.

    ``model`` is the surrogate (left as it is: retraining replaces it by new models, never mutates it).
    """
    p = params or SleeperAgentParams()
    if x_poison.shape[0] != y_poison.shape[0]:
        raise ShapeError(f"{x_poison.shape[0]} poison images but {y_poison.shape[0]} labels")
    if x_poison.shape[0] == 0 or x_source.shape[0] == 0:
        raise ConfigError("sleeper agent needs at least one poison image and one source image")
    rounds = min(p.retrain_rounds, p.steps)
    if rounds > 1 and retrain is None:
        log.info("sleeper agent: no retrain= given; crafting on the fixed surrogate (no retraining)")
        rounds = 1
    g = torch.Generator().manual_seed(seed)
    model.eval()
    g_src0 = source_gradient(model, x_source, trigger, target_class, g)
    initial = gradient_alignment(model, x_poison, y_poison, g_src0)
    # Round r runs steps [bounds[r], bounds[r+1]); the learning-rate schedule spans all rounds.
    bounds = [round(r * p.steps / rounds) for r in range(rounds + 1)]
    best: SleeperAgentOutcome | None = None
    for r in range(p.restarts):
        init = (torch.rand(x_poison.shape, generator=g) * 2 - 1).to(x_poison) * p.eps if r else 0 * x_poison
        delta = init.clone().requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=p.lr * p.eps)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(p.steps * f) for f in (0.375, 0.625, 0.875)], gamma=0.1
        )
        surrogate, g_src, retrains = model, g_src0, 0
        for k in range(rounds):
            if k:
                with torch.no_grad():
                    xk = (x_poison + delta).clamp(0, 1)
                assert retrain is not None  # rounds > 1 only with a retrainer (see above)
                surrogate = retrain(xk, k - 1).eval()
                retrains += 1
                g_src = source_gradient(surrogate, x_source, trigger, target_class, g)
            weights = [q for q in surrogate.parameters() if q.requires_grad]
            for _ in range(bounds[k], bounds[k + 1]):
                xp = (x_poison + delta).clamp(0, 1)
                loss = 1 - _cosine(_grads(surrogate, weights, xp, y_poison, True), g_src)
                (gd,) = torch.autograd.grad(loss, [delta])
                delta.grad = gd.sign()
                opt.step()
                sched.step()
                with torch.no_grad():
                    delta.clamp_(-p.eps, p.eps)
                    delta.copy_((x_poison + delta).clamp(0, 1) - x_poison)
        x_out = (x_poison + delta.detach()).clamp(0, 1)
        align = gradient_alignment(surrogate, x_out, y_poison, g_src)
        if best is None or align > best.alignment:
            best = SleeperAgentOutcome(x_out, align, initial, retrains, surrogate)
    assert best is not None  # restarts >= 1
    return best


def sleeper_agent(
    model: nn.Module, x_poison: torch.Tensor, y_poison: torch.Tensor, x_source: torch.Tensor,
    trigger: Trigger, *, target_class: int, params: SleeperAgentParams | None = None, seed: int = 0,
    retrain: Retrainer | None = None,
) -> torch.Tensor:
    """Perturbed ``x_poison`` (labels ``y_poison`` unchanged), each within ``eps`` (Linf).

    The poisons of :func:`craft_sleeper_agent`; pass ``retrain=`` to retrain the surrogate between rounds.
    """
    return craft_sleeper_agent(model, x_poison, y_poison, x_source, trigger, target_class=target_class,
                               params=params, seed=seed, retrain=retrain).x


@register("poisoning", "sleeper-agent", clean_label=True, trigger="patch", modalities={Modality.IMAGE},
          params=SleeperAgentParams, paper="https://arxiv.org/abs/2106.08970",
          summary="clean label: gradient-matching poisons, the surrogate retrained between rounds")
def craft_sleeper_agent_poisons(task: PoisonTask) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates chosen by ``params.selection``, perturbed by :func:`sleeper_agent`: ``(index, poisons)``."""
    p: SleeperAgentParams = task.params
    c = task.candidates
    idx = c[select_poisons(task.surrogate, task.x_train[c], task.y_train[c], task.count, p.selection, task.seed)]
    if not task.count:
        return idx, task.x_train[:0]
    retrain = task.retrainer(idx) if task.retrainer is not None else None
    return idx, sleeper_agent(task.surrogate, task.x_train[idx], task.y_train[idx], task.x_source, task.trigger,
                              target_class=task.target_class, params=p, seed=task.seed, retrain=retrain)
