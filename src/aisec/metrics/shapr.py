"""SHAPr: per-training-sample membership risk from exact K-NN Shapley values.

Duddu, Szyller & Asokan, "SHAPr: An Efficient and Versatile Membership Privacy Risk Metric for
Machine Learning", arXiv 2112.02230. The utility is a K-nearest-neighbour classifier built on the
*target model's outputs* f(x) of the training records and evaluated on test records; each training
record's Shapley value for that utility is computed exactly with the recursion of Jia et al.
(VLDB 2019), O(N log N) per test point. For test point (x_t, y_t), sort the N training records by
the distance of f(x_i) to f(x_t) (α₁ nearest … α_N farthest) and set

    s(α_N) = 𝟙[y_{α_N} = y_t] / N
    s(α_i) = s(α_{i+1}) + (𝟙[y_{α_i} = y_t] − 𝟙[y_{α_{i+1}} = y_t]) / K · min(K, i) / i

SHAPr(z_i) = (N / M) · Σ_t s_t(z_i) over the M test points — the normalisation of ART's
``art.metrics.SHAPr`` (its recursion is the K = 1 case), so values are comparable across data sizes.
A value > 0 marks a record at membership risk; higher is riskier.

Implementation: test points are processed in blocks; per block one distance matrix, one sort along
the training axis, a reversed cumulative sum for the recursion and one ``index_add_`` back to
training order — no per-sample Python loop. Distances are Euclidean on the output vectors; ties are
broken by training index (stable sort), where ART's order for exact ties is up to scikit-learn.

Dataset-level score (``privacy.shapr_score``). The AI-SEC seed reports one SHAPr number per model
in [0, 1] (MNIST 0.98, CIFAR-10 0.27, 1.0 on ten IMDb test samples) without a formula; these match
the *mean* of ART's per-sample values, which is what aisec reports. By the Shapley efficiency
axiom Σ_i s_t(z_i) = U(D; t) − U(∅; t), so the mean is exactly the K-NN classifier's average
utility on the test points (for K = 1 its accuracy): it lies in [0, 1], and it says how well the
model's outputs on its own training records predict unseen records. It is kept for continuity with
the seed; the per-sample values, their distribution and the fraction of records at risk
(SHAPr > 0) are what locate leakage.

>>> values = shapr_values(p_train, y_train, p_test, y_test)        # (N,) float64
>>> score = float(values.mean())
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aisec.core.progress import Progress, no_progress


def _as_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    return t.detach().to("cpu", dtype)


def _sq_distances(test: torch.Tensor, train: torch.Tensor, train_sq: torch.Tensor) -> torch.Tensor:
    # ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b in float64: one GEMM instead of an (M, N, D) difference tensor.
    d = (test * test).sum(1, keepdim=True) + train_sq.unsqueeze(0) - 2.0 * test @ train.T
    return d.clamp_min_(0.0)


def knn_shapley_matrix(
    train_out: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    test_out: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    k: int = 1,
) -> torch.Tensor:
    """Exact K-NN Shapley values of every training point for every test point: ``(M, N)`` float64.

    Memory is M·N doubles; use :func:`shapr_values` for large sets (it sums over blocks).
    """
    return _block(
        _as_tensor(train_out, torch.float64), _as_tensor(y_train, torch.long),
        _as_tensor(test_out, torch.float64), _as_tensor(y_test, torch.long), k, reduce=False,
    )[0]


def _coefficients(n: int, k: int) -> torch.Tensor:
    i = torch.arange(1, n, dtype=torch.float64)  # ranks 1 .. N-1
    return torch.clamp(i, max=float(k)) / (float(k) * i)


def _block(
    train: torch.Tensor, ytr: torch.Tensor, test: torch.Tensor, yte: torch.Tensor, k: int, *,
    reduce: bool, train_sq: torch.Tensor | None = None, coef: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shapley values of one block of test points — summed per training record ``(N,)`` when
    ``reduce``, else ``(B, N)`` — and each test point's K-NN utility ``(B,)``, from the same sort."""
    n = train.shape[0]
    sq = train_sq if train_sq is not None else (train * train).sum(1)
    c = coef if coef is not None else _coefficients(n, k)
    d = _sq_distances(test, train, sq)
    order = torch.sort(d, dim=1, stable=True).indices  # nearest first
    match = (ytr[order] == yte.unsqueeze(1)).to(torch.float64)  # (B, N) in rank order
    # s_i = s_N + Σ_{j=i}^{N-1} (m_j − m_{j+1}) c_j : a reversed cumulative sum.
    diff = (match[:, :-1] - match[:, 1:]) * c
    tail = torch.flip(torch.cumsum(torch.flip(diff, [1]), 1), [1])
    s = torch.cat([tail, torch.zeros_like(match[:, :1])], 1) + match[:, -1:] / n
    utility = match[:, :k].sum(1) / k  # U(D; t): share of the K nearest with the test label
    if reduce:
        out = torch.zeros(n, dtype=torch.float64)
        out.index_add_(0, order.reshape(-1), s.reshape(-1))
        return out, utility
    return torch.zeros_like(s).scatter_(1, order, s), utility


@dataclass(frozen=True)
class ShaprResult:
    """Per-record SHAPr values, the K-NN utility per test point and their mean (the seed's score)."""

    values: np.ndarray
    utility: np.ndarray

    @property
    def score(self) -> float:
        """Mean SHAPr over training records = mean K-NN utility over test points (efficiency)."""
        return float(self.values.mean())


def shapr_result(
    train_out: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    test_out: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    k: int = 1,
    block: int | None = None,
    progress: Progress = no_progress,
) -> ShaprResult:
    """:func:`shapr_values` plus each test point's K-NN utility (for the score's interval), both
    from one pass over the distance blocks."""
    values, utility = _shapr(train_out, y_train, test_out, y_test, k=k, block=block, progress=progress)
    return ShaprResult(values=values, utility=utility)


def shapr_values(
    train_out: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    test_out: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    k: int = 1,
    block: int | None = None,
    progress: Progress = no_progress,
) -> np.ndarray:
    """SHAPr per training record, ART-normalised: ``(N/M) Σ_t s_t(z_i)``, shape ``(N,)`` float64.

    Args:
        train_out: the target's outputs (probability vectors) on the N training records, ``(N, C)``.
        y_train: their labels ``(N,)``.
        test_out: outputs on the M test records ``(M, C)``.
        y_test: their labels ``(M,)``.
        k: neighbours of the K-NN utility (ART uses 1).
        block: test points per block (default: about 4M distance entries per block).
    """
    return _shapr(train_out, y_train, test_out, y_test, k=k, block=block, progress=progress)[0]


def _shapr(
    train_out: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    test_out: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    k: int,
    block: int | None,
    progress: Progress,
) -> tuple[np.ndarray, np.ndarray]:
    train = _as_tensor(train_out, torch.float64)
    test = _as_tensor(test_out, torch.float64)
    ytr = _as_tensor(y_train, torch.long).reshape(-1)
    yte = _as_tensor(y_test, torch.long).reshape(-1)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"outputs must be (N, C) and (M, C) with equal C, got {tuple(train.shape)} and "
                         f"{tuple(test.shape)}")
    if ytr.shape[0] != train.shape[0] or yte.shape[0] != test.shape[0]:
        raise ValueError("one label per output row is needed")
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    n, m = train.shape[0], test.shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"need training and test records, got {n} and {m}")
    b = block or max(1, min(m, (1 << 22) // max(n, 1)))
    sq = (train * train).sum(1)
    coef = _coefficients(n, k)
    total = torch.zeros(n, dtype=torch.float64)
    utility = []
    for i in range(0, m, b):
        part, u = _block(train, ytr, test[i : i + b], yte[i : i + b], k, reduce=True, train_sq=sq, coef=coef)
        total += part
        utility.append(u)
        progress("SHAPr", min(i + b, m), m)
    return (total * (n / m)).numpy(), torch.cat(utility).numpy()


@dataclass(frozen=True)
class ShaprSummary:
    """Dataset-level view of per-sample SHAPr values."""

    score: float
    at_risk: int
    n: int
    quantiles: dict[str, float]

    @property
    def at_risk_fraction(self) -> float:
        return self.at_risk / self.n if self.n else float("nan")


def summarize(values: np.ndarray, *, tol: float = 1e-9) -> ShaprSummary:
    """Mean (the seed's score), count of records with SHAPr > ``tol`` and a few quantiles."""
    v = np.asarray(values, dtype=np.float64)
    qs = {f"q{int(q * 100):02d}": float(np.quantile(v, q)) for q in (0.01, 0.25, 0.5, 0.75, 0.99)}
    return ShaprSummary(score=float(v.mean()), at_risk=int((v > tol).sum()), n=int(v.size), quantiles=qs)
