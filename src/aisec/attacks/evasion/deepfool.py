"""DeepFool: walk to the nearest linearised decision boundary, repeat until the label flips.

Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural
networks", CVPR 2016, https://arxiv.org/abs/1511.04599

Norms: l2, linf (the paper's l_p variant with q = 1). Needs: gradients. Untargeted only.
Minimum-norm: ``eps`` is ignored; the driver reports the distance of what was found.

At each step, for the ``nb_candidate`` classes ranked highest on the clean input (as in ART),
the boundary between the original prediction ``k`` and class ``l`` is linearised as
``f_l(x) + w_l . r = 0`` with ``f_l = z_l - z_k`` and ``w_l = grad z_l - grad z_k``; the step goes to
the closest of those hyperplanes: ``|f_l| / ||w_l||_2^2 * w_l`` (l2) or
``|f_l| / ||w_l||_1 * sign(w_l)`` (linf), linearised at ``x + r_total`` (kept inside the value
range, as in ART). The output is ``x + (1 + overshoot) * r_total`` (clipped to the value range)
and a sample stops as soon as that output is misclassified. The batch is processed at once:
per-class gradients come from one backward pass per candidate class, never a loop over samples.

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("deepfool", target, x, y, {"norm": "l2", "steps": 50})
>>> out.distance[out.success].median()
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, needs_gradients
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm

_TOL = 1e-8


class DeepFoolParams(EvasionParams):
    norm: Norm = Field(default=Norm.L2, description="Norm of the perturbation: l2 or linf.")
    steps: int = Field(default=50, ge=1, description="Maximum number of linearisation steps.")
    overshoot: float = Field(default=0.02, ge=0, description="Relative overshoot past the boundary.")
    nb_candidate: int = Field(
        default=10, ge=2, description="Classes considered: the top-k of the clean prediction."
    )


def candidate_gradients(
    target: Target, x: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, k)`` and their input gradients ``(N, k, *x.shape[1:])`` for per-sample classes.

    One backward pass per candidate column; samples are independent, so the gradient of the
    column's sum is every sample's own gradient.
    """
    x = x.detach().requires_grad_(True)
    logits = target.logits(x).float()
    z = logits.gather(1, candidates)
    k = candidates.shape[1]
    grads = [
        torch.autograd.grad(z[:, j].sum(), x, retain_graph=j < k - 1)[0] for j in range(k)
    ]
    return z.detach(), torch.stack(grads, 1)


@register_attack(
    "deepfool",
    requires=needs_gradients(),
    norms={Norm.L2, Norm.LINF},
    targeted=False,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1511.04599",
    natural_norm=Norm.L2,
    iterative=True,
)
class DeepFool:
    """DeepFool: iterated steps to the nearest linearised decision boundary (minimum norm)."""

    Params = DeepFoolParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: DeepFoolParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        n = x.shape[0]
        view = (-1, *([1] * (x.ndim - 1)))
        x = x.detach()
        with torch.no_grad():
            logits0 = target.logits(x).float()
        k = min(params.nb_candidate, logits0.shape[1])
        # Column 0 is the original prediction; the others are the runners-up.
        candidates = logits0.topk(k, dim=1).indices
        original = candidates[:, 0]
        r_total = torch.zeros_like(x)
        x_adv = x.clone()
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        for _ in range(params.steps):
            with torch.no_grad():
                active &= target.logits(x_adv).argmax(1) == original
            if not active.any():
                break
            # Linearise at the un-overshot point x + r_total; the overshoot only decides success.
            z, g = candidate_gradients(target, x + r_total, candidates)
            with torch.no_grad():
                f = z[:, 1:] - z[:, :1]  # (N, k-1), negative while the original class leads
                w = (g[:, 1:] - g[:, :1]).reshape(n, k - 1, -1)
                wn = w.norm(dim=2) if params.norm is Norm.L2 else w.abs().sum(2)
                best = (f.abs() / (wn + _TOL)).argmin(1)
                idx = torch.arange(n, device=x.device)
                f_b = f[idx, best].abs()
                w_b = w[idx, best]
                if params.norm is Norm.L2:
                    r = (f_b / (w_b.pow(2).sum(1) + _TOL))[:, None] * w_b
                else:
                    r = (f_b / (w_b.abs().sum(1) + _TOL))[:, None] * w_b.sign()
                r = r.view_as(x) * active.view(view)
                # Keep x + r_total inside the value range (as ART does), so later steps are not
                # spent on directions the clipping already cancelled.
                r_total = (x + r_total + r).clamp(lo, hi) - x
                x_adv = (x + (1 + params.overshoot) * r_total).clamp(lo, hi)
        return x_adv.detach()
