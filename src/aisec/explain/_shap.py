"""KernelSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874) through Captum, for black boxes.

Shapley values of feature groups — the same superpixels as LIME for images (:class:`Segmenter`,
a grid by default), single columns for tables — estimated from ``num_samples`` coalitions with
Captum's ``KernelShap``. All coalitions of one explanation go through the model in one
``predict`` call (``perturbations_per_eval``), in chunks of ``batch_size``. A feature that is
"absent" takes the baseline value (default: the low end of the value range for images, the
column mean of ``training_data`` for tables when given, else 0). Captum draws coalitions from
torch's generator, seeded per sample.
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
from aisec.explain._segment import Segmenter


@register("explainer", "kernel_shap", summary="KernelSHAP: Shapley values from weighted coalitions",
          requires={Capability.PROBABILITIES},
          modalities={Modality.IMAGE, Modality.TABULAR}, stochastic=True, perturbation=True,
          aliases=("shap", "kernelshap"), paper="https://arxiv.org/abs/1705.07874")
def kernel_shap(
    target: Target, x: torch.Tensor, labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, num_samples: int = 1000, segmentation: str = "grid", baseline: float | None = None,
    training_data: Any = None, **seg_params: Any,
) -> Attribution:
    from captum.attr import KernelShap

    t0 = time.perf_counter()
    n = int(x.shape[0])
    shape = tuple(x.shape[1:])
    image = target.spec.modality is Modality.IMAGE and len(shape) == 3
    segmenter = Segmenter(segmentation, seed=seed, **seg_params) if image else None

    def forward(z: torch.Tensor) -> torch.Tensor:
        outs = [target.predict(z[i : i + batch_size]).float() for i in range(0, int(z.shape[0]), batch_size)]
        return torch.cat(outs).to(z.device)

    shap = KernelShap(forward)
    if baseline is not None:
        base: torch.Tensor | float = float(baseline)
    elif not image and training_data is not None:
        td = torch.as_tensor(np.asarray(training_data.cpu() if isinstance(training_data, torch.Tensor)
                                        else training_data), dtype=torch.float32)
        base = td.reshape(td.shape[0], *shape).mean(0, keepdim=True)
    else:
        base = float(target.spec.value_range[0]) if image else 0.0
    values = torch.zeros(n, *shape)
    groups = torch.zeros(n, *shape, dtype=torch.long)
    weights = []
    for i in range(n):
        xi = x[i : i + 1].detach().float().cpu()
        if segmenter is not None:
            img = xi[0].numpy()
            seg = torch.from_numpy(segmenter(img[0] if shape[0] == 1 else np.transpose(img, (1, 2, 0))))
            mask = seg.expand(*shape).unsqueeze(0)
        else:
            mask = torch.arange(int(np.prod(shape))).reshape(1, *shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            attr = shap.attribute(xi, baselines=base if isinstance(base, float) else base.cpu(),
                                  target=int(labels[i]), feature_mask=mask, n_samples=num_samples,
                                  perturbations_per_eval=num_samples)
        values[i] = attr[0].detach().cpu()
        groups[i] = mask[0]
        k = int(mask.max()) + 1
        wt = np.zeros(k)
        flat_m, flat_v = mask[0].reshape(-1).numpy(), values[i].reshape(-1).numpy()
        wt[flat_m] = flat_v  # every element of a group carries the group's value
        weights.append(wt)
        progress("kernel_shap", i + 1, n)
    params: dict[str, Any] = {"num_samples": num_samples, "seed": seed,
                              "baseline": base if isinstance(base, float) else "training mean"}
    if segmenter is not None:
        params.update(segmenter.describe())
    return Attribution(values=values, label=labels, method="kernel_shap", params=params,
                       seconds=time.perf_counter() - t0, groups=groups if image else None,
                       group_weights=weights if image else None)
