"""TRADES: trade clean accuracy for robustness with a KL term between clean and adversarial outputs.

Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019,
https://arxiv.org/abs/1901.08573 (code: github.com/yaodongyu/TRADES, ``trades.py``)

Objective per batch: ``CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x'))``, where ``x'``
maximises that KL inside the eps-ball: ``steps`` signed-gradient steps from ``x + 0.001 * N(0, 1)``
(the authors' start), projected after each step. As in the authors' code the inner maximisation
runs in eval mode, the KL is summed over the batch and divided by the batch size, and ``beta``
defaults to 6 (their CIFAR-10 setting; their MNIST setting is 1). Larger ``beta``: more robust, less
accurate on clean inputs. The inner loop is inline and batched (it maximises a KL, which no
registered attack does); only L-inf is the authors' setting, L2 uses the same projection as PGD-AT.

>>> aisec defend -m digits-cnn -d digits --recipe trades:eps=0.1,beta=6,epochs=10 -o trades.safetensors
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from aisec.attacks.evasion.fgsm import normalized_step
from aisec.core.registry import register
from aisec.defences.training.base import AdversarialParams, Forward, project


class TRADESParams(AdversarialParams):
    beta: float = Field(default=6.0, ge=0, le=1e4, description="Weight of the robustness (KL) term.")
    steps: int = Field(default=10, ge=1, le=10_000, description="Steps of the inner KL maximisation.")
    step_size: float | None = Field(default=None, gt=0, description="Inner step; default eps / 4.")


def _kl(log_p_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Summed KL(p_clean || p_adv) (``nn.KLDivLoss(reduction="sum")`` with log-probabilities of x')."""
    return F.kl_div(log_p_adv, p_clean, reduction="sum")


@register("training", "trades", inner="kl-pgd", paper="https://arxiv.org/abs/1901.08573")
class TRADES:
    """TRADES (Zhang et al. 2019): clean cross-entropy plus beta times the KL to adversarial outputs."""

    Params = TRADESParams

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: TRADESParams,
             value_range: tuple[float, float]) -> torch.Tensor:
        alpha = params.step_size if params.step_size is not None else params.eps / 4
        model.eval()
        with torch.no_grad():
            p_clean = F.softmax(forward(x), dim=1)
        x_adv = (x + 0.001 * torch.randn_like(x)).clamp(*value_range).detach()
        for _ in range(params.steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(_kl(F.log_softmax(forward(x_adv), dim=1), p_clean), x_adv)
            with torch.no_grad():
                x_adv = project(x_adv + alpha * normalized_step(grad, params.norm), x, params.eps, params.norm,
                                value_range)
        model.train()
        logits = forward(x)
        robust = _kl(F.log_softmax(forward(x_adv.detach()), dim=1), F.softmax(logits, dim=1)) / x.shape[0]
        return F.cross_entropy(logits, y) + params.beta * robust
