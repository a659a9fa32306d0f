"""Activation clustering (Chen et al. 2018, https://arxiv.org/abs/1811.03728).

Per class, the penultimate activations of the training samples are reduced to ``dims`` principal
components and split into two clusters with k-means. Poisoned samples form a small, well separated
cluster in the target class. The class statistic is the silhouette score of the 2-means split;
a class is suspected when its silhouette is anomalously high across classes (robust z-score above
``threshold``) and its smaller cluster holds at most ``max_cluster_fraction`` of the class.
Flagged samples: the smaller cluster of each suspected class.
"""

from __future__ import annotations

import numpy as np
import torch

from aisec.core.registry import register
from aisec.detect._common import Detection, anomaly_index, to_numpy


@register("detector", "activation-clustering", inspects="features", flags_samples=True,
          summary="clusters each class's penultimate-layer activations; a small cluster is a suspected poison set",
          paper="https://arxiv.org/abs/1811.03728")
def activation_clustering(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, dims: int = 10,
    threshold: float = 3.0, max_cluster_fraction: float = 0.35, seed: int = 0,
) -> Detection:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    f = to_numpy(features)
    y = labels.cpu().numpy()
    sil = np.full(num_classes, np.nan)
    small_frac = np.full(num_classes, np.nan)
    small_members: dict[int, np.ndarray] = {}
    for k in range(num_classes):
        idx = np.nonzero(y == k)[0]
        if idx.size < 6:
            continue
        a = f[idx] - f[idx].mean(0)
        _, _, vt = np.linalg.svd(a, full_matrices=False)
        red = a @ vt[: min(dims, vt.shape[0])].T
        km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(red)
        lab = km.labels_
        if len(set(lab.tolist())) < 2:
            continue
        sil[k] = float(silhouette_score(red, lab))
        sizes = np.bincount(lab, minlength=2)
        small = int(np.argmin(sizes))
        small_frac[k] = sizes[small] / idx.size
        small_members[k] = idx[lab == small]
    ai = anomaly_index(sil, high_is_suspicious=True)
    suspected = [k for k in range(num_classes)
                 if ai[k] > threshold and np.isfinite(small_frac[k]) and small_frac[k] <= max_cluster_fraction]
    flagged = np.sort(np.concatenate([small_members[k] for k in suspected])) if suspected else np.zeros(0, int)
    return Detection(
        method="activation-clustering", suspected=suspected, class_scores=np.nan_to_num(sil, nan=0.0),
        anomaly_index=ai, threshold=threshold, flagged=flagged.astype(int), samples=int(y.size),
        details={"smaller_cluster_fraction": [float(v) for v in np.nan_to_num(small_frac, nan=0.0)],
                 "statistic": "silhouette score of 2-means on PCA-reduced penultimate activations"},
    )
