"""JSMA: change the pair of features with the highest Jacobian saliency, one pair at a time.

Papernot, McDaniel, Jha, Fredrikson, Celik & Swami, "The Limitations of Deep Learning in
Adversarial Settings", IEEE EuroS&P 2016, https://arxiv.org/abs/1511.07528

Norms: l0 (the distance reported is the fraction of features changed). Needs: gradients.
Targeted; without ``target_labels`` the target of each sample is its second most likely class on
the clean input and the attack stops at any misclassification (untargeted). Minimum-norm: ``eps``
is ignored.

Each iteration takes, for the target class ``t``, ``alpha_p = d z_t / d x_p`` and
``beta_p = sum_{j != t} d z_j / d x_p`` on the logits ``z`` (Carlini & Wagner found logits work
better than the paper's softmax), and picks the pair ``(p, q)`` of still-unused features that
maximises ``|alpha_p + alpha_q| * |beta_p + beta_q|`` subject to ``alpha_p + alpha_q > 0`` and
``beta_p + beta_q < 0`` (signs swapped when ``theta < 0``). If no pair meets the signs, the pair
with the largest ``alpha`` sum is taken (ART's rule). Both features move by
``theta * (hi - lo)`` (clipped to the value range) and leave the search domain. It stops at
success or after ``floor(gamma * n_features / 2)`` pairs, so at most a ``gamma`` fraction of the
features change. With more than ``max_pair_features`` features the pair search runs over the
``max_pair_features`` features of largest single saliency (exact for smaller inputs).

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("jsma", target, x, y, {"theta": 1.0, "gamma": 0.1}, target_labels=t)
>>> out.distance[out.success].mean()  # fraction of features changed
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, needs_gradients
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm

# Pair-score matrices are built for this many elements at a time (samples x pairs).
_CHUNK_ELEMENTS = 1 << 22


class JSMAParams(EvasionParams):
    norm: Norm = Field(default=Norm.L0, description="Norm of the perturbation (JSMA is l0).")
    theta: float = Field(
        default=1.0,
        ge=-1,
        le=1,
        description="Change per selected feature, as a fraction of the value range (negative: decrease).",
    )
    gamma: float = Field(default=0.1, gt=0, le=1, description="Largest fraction of features changed.")
    max_pair_features: int = Field(
        default=1024, ge=2, description="Features (top single saliency) the pair search considers."
    )


def _pick_pairs(
    alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor, increasing: bool, max_features: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(p, q)`` of the most salient feature pair per sample (``alpha``/``beta``: (m, F))."""
    m, f = alpha.shape
    sign = 1.0 if increasing else -1.0
    k = min(f, max_features)
    if k < f:
        single = (sign * alpha).masked_fill(~domain, -torch.inf)
        cand = single.topk(k, dim=1).indices
    else:
        cand = torch.arange(f, device=alpha.device).expand(m, f)
    a = alpha.gather(1, cand) * sign
    b = beta.gather(1, cand) * sign
    dom = domain.gather(1, cand)
    ps, qs = [], []
    chunk = max(1, _CHUNK_ELEMENTS // (k * k))
    eye = torch.eye(k, dtype=torch.bool, device=alpha.device)
    for i in range(0, m, chunk):
        aa = a[i : i + chunk, :, None] + a[i : i + chunk, None, :]
        bb = b[i : i + chunk, :, None] + b[i : i + chunk, None, :]
        valid = dom[i : i + chunk, :, None] & dom[i : i + chunk, None, :] & ~eye
        good = valid & (aa > 0) & (bb < 0)
        saliency = (aa * bb.abs()).masked_fill(~good, -torch.inf)
        fallback = aa.masked_fill(~valid, -torch.inf)
        score = torch.where(good.flatten(1).any(1)[:, None, None], saliency, fallback)
        best = score.flatten(1).argmax(1)
        ps.append(best // k)
        qs.append(best % k)
    p = cand.gather(1, torch.cat(ps)[:, None]).squeeze(1)
    q = cand.gather(1, torch.cat(qs)[:, None]).squeeze(1)
    return p, q


@register_attack(
    "jsma",
    requires=needs_gradients(),
    norms={Norm.L0},
    targeted=True,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1511.07528",
    natural_norm=Norm.L0,
)
class JSMA:
    """Jacobian Saliency Map Attack: few features changed by a lot (L0, minimum norm)."""

    Params = JSMAParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: JSMAParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        n = x.shape[0]
        xf = x.detach().reshape(n, -1).clone()
        nf = xf.shape[1]
        increasing = params.theta > 0
        step = params.theta * (hi - lo)
        with torch.no_grad():
            logits0 = target.logits(x).float()
        # Untargeted: aim at the second most likely class, stop at any misclassification.
        tgt = logits0.topk(2, dim=1).indices[:, 1] if target_labels is None else target_labels
        domain = xf < hi if increasing else xf > lo
        max_pairs = max(1, math.floor(params.gamma * nf / 2))
        pred = logits0.argmax(1)
        for it in range(max_pairs + 1):
            if it > 0:
                with torch.no_grad():
                    pred = target.logits(xf.view_as(x)).float().argmax(1)
            done = pred == tgt if target_labels is not None else pred != y
            active = ~done & (domain.sum(1) >= 2)
            if it == max_pairs or not active.any():
                break
            idx = active.nonzero().squeeze(1)
            xa = xf[idx].view(-1, *x.shape[1:]).requires_grad_(True)
            z = target.logits(xa).float()
            g_t = torch.autograd.grad(z.gather(1, tgt[idx, None]).sum(), xa, retain_graph=True)[0]
            g_all = torch.autograd.grad(z.sum(), xa)[0]
            alpha = g_t.reshape(len(idx), -1)
            beta = g_all.reshape(len(idx), -1) - alpha
            p, q = _pick_pairs(alpha, beta, domain[idx], increasing, params.max_pair_features)
            with torch.no_grad():
                for feat in (p, q):
                    xf[idx, feat] = (xf[idx, feat] + step).clamp(lo, hi)
                    domain[idx, feat] = False
        return xf.view_as(x).detach()
