"""Neural Cleanse (Wang et al., IEEE S&P 2019, https://doi.org/10.1109/SP.2019.00031).

For every class k, reverse-engineer the smallest trigger (mask ``m``, pattern ``p``) that sends
clean images to k: ``min CE(f((1 - m) x + m p), k) + lambda_k ||m||_1``. A backdoor target class
needs a far smaller mask than the others. The anomaly index of class k is
``(median(L1) - L1_k) / (1.4826 MAD)``; classes above ``threshold`` are suspected (the paper uses 2;
we default to 3: on 8x8 digits a clean model reached 2.6 in one of three seeds, see docs/poisoning.md).

All classes are optimised at once: one forward/backward of ``K x batch`` images per step.
``lambda_k`` adapts per class (x1.5 while the trigger works on ≥ ``success`` of the batch,
/1.5 otherwise), and each class keeps the smallest mask that reached ``success``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aisec.core.registry import register
from aisec.core.types import Modality
from aisec.detect._common import Detection, anomaly_index


@register("detector", "neural-cleanse", inspects="model", modalities={Modality.IMAGE},
          summary="reverse-engineers image triggers, one per class, from clean samples",
          paper="https://doi.org/10.1109/SP.2019.00031")
def neural_cleanse(
    model: nn.Module, x: torch.Tensor, num_classes: int, *, steps: int = 300, batch_size: int = 32,
    lr: float = 0.1, init_lambda: float = 1e-2, success: float = 0.9, threshold: float = 3.0, seed: int = 0,
) -> Detection:
    g = torch.Generator().manual_seed(seed)
    dev = x.device
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        kk = num_classes
        _, c, h, w = x.shape
        m_raw = torch.full((kk, 1, h, w), -2.0, device=dev, requires_grad=True)
        p_raw = (torch.randn(kk, c, h, w, generator=g) * 0.1).to(dev).requires_grad_(True)
        opt = torch.optim.Adam([m_raw, p_raw], lr=lr, betas=(0.5, 0.9))
        lam = torch.full((kk,), init_lambda, device=dev)
        best_l1 = torch.full((kk,), float("inf"), device=dev)
        best_m = torch.zeros(kk, 1, h, w, device=dev)
        best_p = torch.zeros(kk, c, h, w, device=dev)
        labels = torch.arange(kk, device=dev).repeat_interleave(batch_size)
        for step in range(steps):
            xb = x[torch.randint(0, x.shape[0], (batch_size,), generator=g).to(dev)]
            m = torch.sigmoid(m_raw)
            pat = torch.sigmoid(p_raw)
            xt = (1 - m.unsqueeze(1)) * xb.unsqueeze(0) + (m * pat).unsqueeze(1)  # (K, B, C, H, W)
            logits = model(xt.reshape(kk * batch_size, c, h, w))
            ce = F.cross_entropy(logits, labels, reduction="none").view(kk, batch_size).mean(1)
            l1 = m.flatten(1).sum(1)
            loss = (ce + lam * l1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                acc = (logits.argmax(1) == labels).float().view(kk, batch_size).mean(1)
                ok = acc >= success
                better = ok & (l1 < best_l1)
                best_l1 = torch.where(better, l1, best_l1)
                best_m[better] = m[better]
                best_p[better] = pat[better]
                if step % 10 == 9:
                    lam = torch.where(ok, lam * 1.5, lam / 1.5)
        with torch.no_grad():
            m_end = torch.sigmoid(m_raw)
            never = ~torch.isfinite(best_l1)
            # a class whose trigger never worked keeps its final (large) mask: it is not suspicious
            best_l1 = torch.where(never, m_end.flatten(1).sum(1), best_l1)
            best_m[never] = m_end[never]
            best_p[never] = torch.sigmoid(p_raw)[never]
    finally:
        for q in model.parameters():
            q.requires_grad_(True)
    l1n = best_l1.cpu().double().numpy()
    ai = anomaly_index(l1n, high_is_suspicious=False)
    suspected = [k for k in range(kk) if ai[k] > threshold]
    return Detection(
        method="neural-cleanse", suspected=suspected, class_scores=l1n, anomaly_index=ai, threshold=threshold,
        flagged=np.zeros(0, int), samples=int(x.shape[0]),
        details={"statistic": "L1 norm of the smallest reverse-engineered trigger mask (pixels)",
                 "trigger_found": [bool(v) for v in (~never).cpu().numpy()]},
        triggers={"mask": best_m.cpu().numpy(), "pattern": best_p.cpu().numpy()},
    )
