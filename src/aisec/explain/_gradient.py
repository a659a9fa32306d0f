"""Gradient attributions through Captum: saliency and Integrated Gradients (white box only).

Both differentiate the explained class's *logit* (``target.logits``, normalisation included), on
the target's device, for the whole batch at once.

- ``saliency`` (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034): ``|∂z_c/∂x|``.
- ``integrated_gradients`` (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365):
  ``(x − x₀) · ∫₀¹ ∂z_c/∂x(x₀ + α(x − x₀)) dα`` with Gauss-Legendre quadrature; ``x₀`` is the
  baseline (default: the low end of the value range, black for images). Attributions sum to
  ``z_c(x) − z_c(x₀)`` up to the quadrature error, kept per sample as ``convergence_delta``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from aisec.core.progress import Progress
from aisec.core.registry import register
from aisec.core.target import Target
from aisec.core.types import Capability, Modality
from aisec.explain._base import Attribution


@register("explainer", "saliency", summary="saliency: the gradient of the class score w.r.t. the input",
          requires={Capability.GRADIENTS},
          modalities={Modality.IMAGE, Modality.TABULAR}, paper="https://arxiv.org/abs/1312.6034")
def saliency(
    target: Target, x: torch.Tensor, labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, absolute: bool = True,
) -> Attribution:
    from captum.attr import Saliency

    t0 = time.perf_counter()
    method = Saliency(target.logits)
    out = []
    n = int(x.shape[0])
    for i in range(0, n, batch_size):
        xb = x[i : i + batch_size].detach().to(target.spec.device).float().requires_grad_(True)
        out.append(method.attribute(xb, target=labels[i : i + batch_size].to(xb.device), abs=absolute)
                   .detach().cpu())
        progress("saliency", min(i + batch_size, n), n)
    return Attribution(values=torch.cat(out), label=labels, method="saliency", params={"abs": absolute},
                       seconds=time.perf_counter() - t0)


@register("explainer", "integrated_gradients", summary="integrated gradients along a path from a baseline",
          requires={Capability.GRADIENTS},
          modalities={Modality.IMAGE, Modality.TABULAR}, aliases=("ig",), paper="https://arxiv.org/abs/1703.01365")
def integrated_gradients(
    target: Target, x: torch.Tensor, labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, steps: int = 32, baseline: float | None = None, method: str = "gausslegendre",
) -> Attribution:
    from captum.attr import IntegratedGradients

    t0 = time.perf_counter()
    ig = IntegratedGradients(target.logits)
    base = float(target.spec.value_range[0]) if baseline is None else float(baseline)
    n = int(x.shape[0])
    per_call = max(1, batch_size // steps)  # samples per call so that one forward pass holds batch_size inputs
    out, deltas = [], []
    for i in range(0, n, per_call):
        xb = x[i : i + per_call].detach().to(target.spec.device).float().requires_grad_(True)
        attr, delta = ig.attribute(xb, baselines=base, target=labels[i : i + per_call].to(xb.device),
                                   n_steps=steps, method=method,
                                   internal_batch_size=max(batch_size, int(xb.shape[0])),
                                   return_convergence_delta=True)
        out.append(attr.detach().cpu())
        deltas.append(delta.detach().cpu())
        progress("integrated_gradients", min(i + per_call, n), n)
    return Attribution(values=torch.cat(out), label=labels, method="integrated_gradients",
                       params={"steps": steps, "baseline": base, "method": method},
                       seconds=time.perf_counter() - t0,
                       score=np.full(n, np.nan),
                       raw=[{"convergence_delta": torch.cat(deltas).numpy()}])


@register("explainer", "random", modalities={Modality.IMAGE, Modality.TABULAR}, stochastic=True)
def random_attribution(
    target: Target, x: Any, labels: torch.Tensor, *, seed: int, batch_size: int, progress: Progress,
) -> Attribution:
    """A control: i.i.d. uniform scores, seeded. Any faithful explainer must beat it."""
    from aisec.core.errors import ConfigError

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    if target.spec.modality is Modality.TEXT:
        raise ConfigError(
            "the 'random' control explains tensor inputs (images, tables); for text use 'lime', whose "
            "faithfulness score already compares against random word orders"
        )
    return Attribution(values=torch.rand(tuple(x.shape), generator=g), label=labels, method="random",
                       params={"seed": seed}, seconds=time.perf_counter() - t0)
