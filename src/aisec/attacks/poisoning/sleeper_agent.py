"""Sleeper Agent: clean-label poisons crafted by gradient matching.

Souri, Fowl, Chellappa, Goldblum, Goldstein, "Sleeper Agent: Scalable Hidden Trigger Backdoors for
Neural Networks Trained from Scratch", NeurIPS 2022, https://arxiv.org/abs/2106.08970.

Poisons are target-class training images (labels unchanged) perturbed by ``delta``,
``||delta||_inf <= eps``, so that the parameter gradient of their training loss aligns with the
gradient that would teach "source image + trigger -> target class":
``min 1 - cos(grad_theta L(f(x_p + delta), y_p), grad_theta L(f(x_s + patch), y_target))``.
Optimised with signed Adam (Adam fed the sign of the gradient), random restarts, keeping the
restart with the best alignment. Poisons are chosen as the target-class samples with the largest
parameter-gradient norm (per-sample gradients via ``torch.func.vmap``) or at random.

All poisons are optimised in one batch: each step is one double-backward pass over the poisons.
Not implemented: periodic retraining of the surrogate during crafting (``retraining_factor`` in ART).

>>> delta_x = sleeper_agent(model, x_poison, y_poison, x_source, trigger, target_class=1)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from aisec.attacks.poisoning.badnets import Trigger


class SleeperAgentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eps: float = Field(default=16 / 255, gt=0, le=1, description="Linf radius around each poison image.")
    steps: int = Field(default=100, ge=1, description="Signed-Adam steps per restart.")
    lr: float = Field(default=0.1, gt=0, description="Adam step size, in units of eps.")
    restarts: int = Field(default=1, ge=1, description="Random restarts; the best alignment is kept.")
    selection: Literal["gradient-norm", "random"] = "gradient-norm"


def per_sample_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇θ L(f(x_i), y_i)‖ for every sample, batched with ``torch.func`` (no Python loop)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.sqrt(sum((g.flatten(1) ** 2).sum(1) for g in grads.values()))  # type: ignore[return-value]


def select_poisons(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int,
                   strategy: str = "gradient-norm", seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` samples to perturb."""
    if strategy == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(x.shape[0], generator=g)[:k].to(x.device)
    norms = torch.cat([per_sample_grad_norms(model, x[i : i + 256], y[i : i + 256]) for i in range(0, x.shape[0], 256)])
    return torch.argsort(norms, descending=True)[:k]


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor], create_graph: bool) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def sleeper_agent(
    model: nn.Module, x_poison: torch.Tensor, y_poison: torch.Tensor, x_source: torch.Tensor,
    trigger: Trigger, *, target_class: int, params: SleeperAgentParams | None = None, seed: int = 0,
) -> torch.Tensor:
    """Perturbed ``x_poison`` (labels ``y_poison`` unchanged), each within ``eps`` (Linf)."""
    p = params or SleeperAgentParams()
    g = torch.Generator().manual_seed(seed)
    model.eval()
    weights = [q for q in model.parameters() if q.requires_grad]
    xs = trigger.apply(x_source, g)
    ys = torch.full((xs.shape[0],), target_class, dtype=torch.long, device=xs.device)
    g_src = [t.detach() for t in _flat_grad(F.cross_entropy(model(xs), ys), weights, False)]
    src_norm = torch.sqrt(sum((t * t).sum() for t in g_src))  # type: ignore[arg-type]
    best = x_poison.clone()
    best_loss = float("inf")
    for r in range(p.restarts):
        init = (torch.rand(x_poison.shape, generator=g) * 2 - 1).to(x_poison) * p.eps if r else 0 * x_poison
        delta = init.clone().requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=p.lr * p.eps)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(p.steps * f) for f in (0.375, 0.625, 0.875)], gamma=0.1
        )
        loss_val = float("inf")
        for _ in range(p.steps):
            xp = (x_poison + delta).clamp(0, 1)
            gp = _flat_grad(F.cross_entropy(model(xp), y_poison), weights, True)
            dot = sum((a * b).sum() for a, b in zip(gp, g_src, strict=True))
            pn = torch.sqrt(sum((a * a).sum() for a in gp))  # type: ignore[arg-type]
            loss = 1 - dot / (pn * src_norm + 1e-12)  # type: ignore[operator]
            (gd,) = torch.autograd.grad(loss, [delta])
            loss_val = float(loss.detach())
            opt.zero_grad(set_to_none=True)
            delta.grad = gd.sign()
            opt.step()
            sched.step()
            with torch.no_grad():
                delta.clamp_(-p.eps, p.eps)
                delta.copy_((x_poison + delta).clamp(0, 1) - x_poison)
        if loss_val < best_loss:
            best_loss = loss_val
            best = (x_poison + delta.detach()).clamp(0, 1)
    return best
