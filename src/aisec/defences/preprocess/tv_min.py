"""Total-variation minimisation (Guo et al., "Countering Adversarial Images using Input
Transformations", ICLR 2018, https://arxiv.org/abs/1711.00117; Rudin, Osher & Fatemi 1992).

Each channel of each image is replaced by the ROF denoising ``argmin_u ½‖u − x‖² + weight·TV(u)``,
solved with Chambolle's projection algorithm (J. Math. Imaging Vis. 20, 2004) — hand-written in torch
here so a whole batch runs as one tensor program; it follows scikit-image's
``denoise_tv_chambolle`` step for step (same weight, stopping rule ``|E_{n-1} − E_n| < eps·E_0`` per
image channel, iteration cap) and is checked against it in the tests. Guo et al. also drop random pixels
before the reconstruction; that randomised variant is not built. The solver runs outside autograd:
no gradient path, evaluated with BPDA (straight-through), as Athalye et al. 2018 broke it.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.core.registry import register
from aisec.defences.preprocess.base import DefenceParams, PreprocessDefence


class TVMinParams(DefenceParams):
    weight: float = Field(default=0.1, gt=0, le=10, description="TV weight, in units of the value range "
                          "(larger: smoother).")
    eps: float = Field(default=2e-4, gt=0, lt=1, description="Relative energy change that stops the solver.")
    max_iter: int = Field(default=200, ge=1, le=10_000, description="Iteration cap.")


@register("defence", "tv-min", differentiable=False, stochastic=False,
          paper="https://arxiv.org/abs/1711.00117", aliases=("tvm", "total-variation"))
class TVMin(PreprocessDefence):
    """Total-variation minimisation (ROF denoising, Chambolle's algorithm), per image channel."""

    Params = TVMinParams
    name = "tv-min"

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        assert isinstance(self.params, TVMinParams)
        lo, hi = value_range
        u = ((x.detach().double() - lo) / (hi - lo))
        n, c, h, w = u.shape
        out = chambolle(u.reshape(n * c, h, w), self.params.weight, self.params.eps, self.params.max_iter)
        return (out.reshape(n, c, h, w) * (hi - lo) + lo).clamp(lo, hi).to(x.dtype)


def chambolle(img: torch.Tensor, weight: float, eps: float, max_iter: int) -> torch.Tensor:
    """ROF denoising of each 2-D image of ``img`` ``(B, H, W)``; each stops on its own energy criterion."""
    b = img.shape[0]
    p = torch.zeros((2, *img.shape), dtype=img.dtype, device=img.device)
    g = torch.zeros_like(p)
    out = img.clone()
    done = torch.zeros(b, dtype=torch.bool, device=img.device)
    e_init = e_prev = torch.zeros(b, dtype=img.dtype, device=img.device)
    tau = 1.0 / 4.0  # 1 / (2 * ndim)
    size = float(img.shape[1] * img.shape[2])
    for i in range(max_iter):
        if i > 0:
            d = -p.sum(0)  # the negative divergence of p
            d[:, 1:, :] += p[0, :, :-1, :]
            d[:, :, 1:] += p[1, :, :, :-1]
            new = img + d
        else:
            d = torch.zeros_like(img)
            new = img
        out = torch.where(done[:, None, None], out, new)
        energy = (d**2).sum((1, 2))
        g.zero_()
        g[0, :, :-1, :] = out[:, 1:, :] - out[:, :-1, :]
        g[1, :, :, :-1] = out[:, :, 1:] - out[:, :, :-1]
        norm = torch.sqrt((g**2).sum(0)).unsqueeze(0)
        energy = (energy + weight * norm.sum((0, 2, 3))) / size
        step = (p - tau * g) / (1.0 + norm * (tau / weight))
        p = torch.where(done[None, :, None, None], p, step)
        if i == 0:
            e_init = e_prev = energy
        else:
            done = done | ((e_prev - energy).abs() < eps * e_init)
            e_prev = torch.where(done, e_prev, energy)
            if bool(done.all()):
                break
    return out
