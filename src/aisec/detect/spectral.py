"""Spectral signatures (Tran, Li, Madry 2018, https://arxiv.org/abs/1811.00636).

Per class, centred penultimate activations are projected on their top singular vector; poisoned
samples have large squared projections (outlier scores). The class statistic is the share of the
variance on that top direction, ``s_1^2 / sum s_i^2``; a backdoored class concentrates variance on
one direction (the trigger's). A class is suspected when that share is anomalously high across
classes (robust z-score above ``threshold``). Flagged samples: in suspected classes, the
``1.5 * expected_rate`` fraction with the highest outlier scores (the paper's removal rule).

``expected_rate`` bounds the share of poisons *within the backdoored class* (the paper's eps as used in
its experiments, 5% / 10% of the target class; ART's ``expected_pp_poison``), not the poisoned share of
the whole training set: a BadNets rate r of N samples put into a class of n_t samples is
``r * N / n_t`` of that class (about a third at r = 5% on ten balanced classes).
"""

from __future__ import annotations

import numpy as np
import torch

from aisec.core.errors import ConfigError
from aisec.core.registry import register
from aisec.detect._common import Detection, anomaly_index, to_numpy


@register("detector", "spectral-signatures", inspects="features", flags_samples=True,
          summary="flags samples with outlying projections on the top singular vector of a class's features",
          paper="https://arxiv.org/abs/1811.00636")
def spectral_signatures(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, expected_rate: float = 0.1,
    threshold: float = 3.0,
) -> Detection:
    if not 0.0 < expected_rate <= 1.0:
        raise ConfigError(f"expected_rate is a share of a class's samples and must lie in (0, 1], got {expected_rate}")
    f = to_numpy(features)
    y = labels.cpu().numpy()
    share = np.full(num_classes, np.nan)
    scores = np.zeros(y.size)
    for k in range(num_classes):
        idx = np.nonzero(y == k)[0]
        if idx.size < 3:
            continue
        a = f[idx] - f[idx].mean(0)
        _, s, vt = np.linalg.svd(a, full_matrices=False)
        total = float((s**2).sum())
        share[k] = float(s[0] ** 2 / total) if total > 0 else 0.0
        scores[idx] = (a @ vt[0]) ** 2
    ai = anomaly_index(share, high_is_suspicious=True)
    suspected = [k for k in range(num_classes) if ai[k] > threshold]
    flagged: list[np.ndarray] = []
    for k in suspected:
        idx = np.nonzero(y == k)[0]
        m = min(idx.size, int(np.ceil(1.5 * expected_rate * idx.size)))
        flagged.append(idx[np.argsort(-scores[idx])[:m]])
    fl = np.sort(np.concatenate(flagged)) if flagged else np.zeros(0, int)
    return Detection(
        method="spectral-signatures", suspected=suspected, class_scores=np.nan_to_num(share, nan=0.0),
        anomaly_index=ai, threshold=threshold, flagged=fl.astype(int), samples=int(y.size),
        details={"statistic": "share of variance on the top singular direction of penultimate activations",
                 "outlier_scores_max": float(scores.max()) if scores.size else 0.0},
    )
