"""SPADE: a spectral, black-box robustness score from k-NN graphs of inputs and outputs (Cheng et al. 2021).

Cheng, Deng, Zhao, Cai, Zhang, Feng, "SPADE: A Spectral Method for Black-Box Adversarial Robustness
Evaluation", ICML 2021, http://proceedings.mlr.press/v139/cheng21a.html (reference code:
github.com/Feng-Research/SPADE, ``SPADE_score/SPADE.py`` and ``eigen.jl``).

Two unweighted, symmetrised k-NN graphs are built on the same N samples: ``G_X`` on the (flattened)
inputs and ``G_Y`` on the model's outputs. With ``L_X`` and ``L_Y`` their Laplacians, the **SPADE score**
is the largest generalised eigenvalue of ``L_X v = λ L_Y v`` (the largest eigenvalue of ``L_Y⁺ L_X``)::

    λ_max = max_x  (xᵀ L_X x) / (xᵀ L_Y x)       (x not constant)

a signal on the samples that varies little across output neighbours but much across input neighbours
— samples the model maps far apart although they are close in input space. The paper shows it bounds
the best Lipschitz constant of the input→output map on the data manifold (in effective-resistance
distances); larger means less robust. It is dimensionless: unweighted graphs only see who is whose
neighbour, so rescaling inputs or outputs leaves it unchanged, and a map that keeps every
neighbourhood (the same graph on both sides) scores exactly 1.

**Node scores** rank the samples: with the top ``num_eigs`` eigenpairs ``(λ_i, v_i)`` (``v_i`` normalised
so that ``v_iᵀ L_Y v_i = 1``), each input-graph edge ``(p, q)`` gets ``z_pq = Σ_i λ_i (v_i[p] − v_i[q])²``,
scaled so the largest is 1, and each sample the mean ``z`` of its input-graph edges, scaled so the
largest is 1. The samples with the highest node scores are the least robust.

How this differs from the reference code, and why:

* **k-NN** is exact (scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`), not HNSW (approximate):
  at 10,000 samples exact search takes seconds (``bench/bench_spade.py``), so nothing is gained by
  approximating it.
* **Laplacians** are combinatorial (``D − A``), as in the paper and the reference's ``adv_train`` code;
  its ``SPADE_score`` code uses normalised Laplacians, whose null vectors ``D^½ 1`` differ between the two
  graphs, which makes ``L_Y`` singular on vectors ``L_X`` does not vanish on and the problem ill-posed —
  the source of the reference's warning that scipy returns *negative* largest eigenvalues (it switched
  to Julia's Arpack instead).
* **The singular pair** is made definite exactly rather than by a ``1e-6·I`` shift (which makes the score
  depend on the shift): both combinatorial Laplacians of connected graphs vanish only on constants, and
  both quadratic forms ignore an added constant, so fixing one sample's value to 0 ("grounding": deleting
  its row and column from both) changes no eigenvalue except removing the 0/0 one. The grounded ``L_Y``
  is positive definite, and :func:`scipy.sparse.linalg.eigsh` solves the symmetric-definite problem
  ``A v = λ B v`` (Lanczos in the B inner product). Eigenvalues are then ``≥ 0`` by construction; the
  solver's answer is still checked (non-negative, small residual) and a dense solve replaces it when
  it fails.
* **Disconnected graphs** (a confident classifier's outputs fall into one cluster per class) would make
  λ_max infinite. Their components are joined by the shortest edge between them, Borůvka-style (each
  component to its nearest sample outside it, repeated until one component remains: at most
  ``components − 1`` edges), the same repair scikit-learn's Isomap and spectral embedding apply; the
  number of edges added is reported (:attr:`SpadeResult.bridges_out`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aisec.core.errors import ConfigError, DataError

#: Largest N for which the dense fallback solve (``scipy.linalg.eigh``, O(N³)) is attempted.
DENSE_LIMIT = 4000


@dataclass(frozen=True)
class SpadeResult:
    """SPADE on N samples.

    Attributes:
        score: λ_max, the SPADE score (≥ 0, larger = less robust).
        eigenvalues: the top ``num_eigs`` generalised eigenvalues, largest first.
        eigenvectors: ``(N, num_eigs)``, each normalised to ``vᵀ L_Y v = 1`` (defined up to a constant).
        node_scores: ``(N,)`` in ``[0, 1]``, the largest 1: mean edge score of each sample's input-graph edges.
        edges: ``(E, 2)`` the input graph's edges ``p < q``; ``edge_scores`` their ``z_pq`` in ``[0, 1]``.
        k: neighbours per sample; ``bridges_in``/``bridges_out``: edges added to connect each graph.
        solver: ``eigsh`` (sparse, symmetric-definite) or ``dense`` (``scipy.linalg.eigh``).
    """

    score: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    node_scores: np.ndarray
    edges: np.ndarray
    edge_scores: np.ndarray
    k: int
    bridges_in: int
    bridges_out: int
    solver: str

    @property
    def n(self) -> int:
        return int(self.node_scores.shape[0])

    def ranking(self) -> np.ndarray:
        """Sample indices from the least robust (highest node score) to the most; ties by index."""
        return np.argsort(-self.node_scores, kind="stable")


def robustness_index(score: float) -> float:
    """The SPADE score on ``[0, 1]``, 1 = most robust: ``min(1, 1 / score)``.

    A map that keeps every k-NN neighbourhood scores λ_max = 1 and gets 1; a score ``s > 1`` means some
    signal varies ``s`` times more across input neighbours than across output neighbours, and gets ``1/s``.
    Scores below 1 (outputs whose graph is "longer" than the input's) are capped at 1.
    """
    if not math.isfinite(score) or score <= 0:
        return 0.0 if score != 0 else 1.0
    return min(1.0, 1.0 / score)


def knn_graph(features: np.ndarray, k: int) -> tuple[sp.csr_matrix, int]:
    """The symmetrised, unweighted k-NN adjacency of the rows of ``features`` (self excluded), made
    connected by the shortest bridging edges; returns it and the number of bridges added.

    Exact Euclidean neighbours (:class:`sklearn.neighbors.NearestNeighbors`); ties between equidistant
    neighbours are broken by the search, as in any k-NN graph.
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.ascontiguousarray(features, dtype=np.float64).reshape(features.shape[0], -1)
    n = x.shape[0]
    if n < 3:
        raise DataError(f"SPADE needs at least 3 samples, got {n}")
    if not np.isfinite(x).all():
        raise DataError("SPADE: the features hold NaN or infinite values")
    kk = min(k, n - 1)
    nn = NearestNeighbors(n_neighbors=kk + 1).fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    # a sample's own index comes first unless it has duplicates at distance 0; drop it wherever it is,
    # else the last neighbour (as the reference's construct_adj does)
    rows = np.repeat(np.arange(n), kk)
    cols = np.empty((n, kk), dtype=np.int64)
    for i in range(n):
        r = idx[i][idx[i] != i]
        cols[i] = r[:kk]
    adj = sp.coo_matrix((np.ones(rows.size), (rows, cols.ravel())), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64).tocsr()
    adj, bridges = _connect(adj, x)
    return adj, bridges


def _connect(adj: sp.csr_matrix, x: np.ndarray) -> tuple[sp.csr_matrix, int]:
    """``adj`` with components joined by shortest edges (Borůvka rounds), and how many were added."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    added = 0
    while True:
        m, labels = connected_components(adj, directed=False)
        if m == 1:
            return adj, added
        new: set[tuple[int, int]] = set()
        for c in range(m):
            inside = np.flatnonzero(labels == c)
            outside = np.flatnonzero(labels != c)
            nn = NearestNeighbors(n_neighbors=1).fit(x[outside])
            d, j = nn.kneighbors(x[inside])
            best = int(np.argmin(d[:, 0]))
            p, q = int(inside[best]), int(outside[int(j[best, 0])])
            new.add((min(p, q), max(p, q)))
        r = np.array([e[0] for e in new] + [e[1] for e in new])
        c_ = np.array([e[1] for e in new] + [e[0] for e in new])
        adj = (adj + sp.csr_matrix((np.ones(r.size), (r, c_)), shape=adj.shape))
        adj = (adj > 0).astype(np.float64).tocsr()
        added += len(new)


def laplacian(adj: sp.spmatrix) -> sp.csr_matrix:
    """The combinatorial Laplacian ``D − A`` of a symmetric adjacency."""
    a = sp.csr_matrix(adj, dtype=np.float64)
    deg = np.asarray(a.sum(axis=1)).ravel()
    return (sp.diags(deg) - a).tocsr()


def generalized_top(l_x: sp.spmatrix, l_y: sp.spmatrix, num_eigs: int, *, solver: str = "auto",
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``num_eigs`` largest eigenpairs of ``L_X v = λ L_Y v`` on non-constant ``v`` (both Laplacians of
    connected graphs on the same nodes), largest first; vectors padded back to N with ``vᵀ L_Y v = 1``.

    ``solver``: ``eigsh`` (sparse Lanczos), ``dense`` (``scipy.linalg.eigh``), or ``auto`` (eigsh, with a dense
    solve when it fails or returns an invalid pair and N ≤ :data:`DENSE_LIMIT`).
    """
    n = l_x.shape[0]
    if l_y.shape != (n, n) or l_x.shape != (n, n):
        raise ConfigError(f"Laplacians must be square and alike, got {l_x.shape} and {l_y.shape}")
    if not 1 <= num_eigs <= n - 2:
        raise ConfigError(f"num_eigs must lie in [1, {n - 2}] for {n} samples, got {num_eigs}")
    g = n - 1  # ground the last sample: its value is fixed at 0
    a = sp.csr_matrix(l_x, dtype=np.float64)[:g, :g]
    b = sp.csr_matrix(l_y, dtype=np.float64)[:g, :g]
    vals: np.ndarray | None = None
    vecs: np.ndarray | None = None
    used = solver
    if solver in ("auto", "eigsh") and num_eigs < g - 1:
        try:
            vals, vecs = _eigsh(a, b, num_eigs, seed)
        except (np.linalg.LinAlgError, RuntimeError, ValueError) as exc:  # ArpackError is a RuntimeError
            if solver == "eigsh":
                raise DataError(f"SPADE: the sparse eigensolver failed ({exc})") from exc
        used = "eigsh"
        if vals is not None and vecs is not None and not _valid(a, b, vals, vecs):
            if solver == "eigsh":
                raise DataError("SPADE: the sparse eigensolver returned an invalid eigenpair (negative eigenvalue "
                                "or large residual)")
            vals = vecs = None
    if vals is None or vecs is None:
        if solver == "eigsh":
            raise DataError("SPADE: the sparse eigensolver did not run (num_eigs too close to N)")
        if n > DENSE_LIMIT and solver == "auto":
            raise DataError(f"SPADE: the sparse eigensolver failed on {n} samples and a dense solve is limited to "
                            f"{DENSE_LIMIT}; use fewer samples or a larger k")
        vals, vecs = _dense(a, b, num_eigs)
        used = "dense"
    order = np.argsort(-vals)
    vals, vecs = vals[order], vecs[:, order]
    full = np.zeros((n, num_eigs))
    full[:g] = vecs
    return np.maximum(vals, 0.0), full, used


def _eigsh(a: sp.csr_matrix, b: sp.csr_matrix, num_eigs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse.linalg import LinearOperator, eigsh, splu

    # B is symmetric positive definite: a minimum-degree ordering of B + Bᵀ with diagonal pivots halves the
    # factor's fill and takes a third of the time of the default COLAMD (10,000 samples: 4 s against 12 s)
    lu = splu(sp.csc_matrix(b), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
    minv = LinearOperator(b.shape, matvec=lambda v: lu.solve(np.asarray(v, dtype=np.float64).ravel()),
                          dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(a.shape[0])
    vals, vecs = eigsh(a, k=num_eigs, M=b, Minv=minv, which="LA", v0=v0, tol=1e-10, maxiter=20 * a.shape[0])
    return np.asarray(vals), np.asarray(vecs)


def _dense(a: sp.csr_matrix, b: sp.csr_matrix, num_eigs: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.linalg import eigh

    g = a.shape[0]
    vals, vecs = eigh(a.toarray(), b.toarray(), subset_by_index=[g - num_eigs, g - 1])
    return np.asarray(vals), np.asarray(vecs)


def _valid(a: sp.csr_matrix, b: sp.csr_matrix, vals: np.ndarray, vecs: np.ndarray) -> bool:
    """Eigenvalues ≥ 0 (A is PSD, B PD) and ``‖A v − λ B v‖ ≤ 1e-6 (‖A v‖ + λ‖B v‖)`` for every pair."""
    if not np.isfinite(vals).all() or not np.isfinite(vecs).all():
        return False
    scale = float(np.abs(vals).max()) if vals.size else 1.0
    if (vals < -1e-8 * max(scale, 1.0)).any():
        return False
    av, bv = a @ vecs, b @ vecs
    res = np.linalg.norm(av - bv * vals, axis=0)
    ref = np.linalg.norm(av, axis=0) + np.abs(vals) * np.linalg.norm(bv, axis=0)
    return bool((res <= 1e-6 * np.maximum(ref, 1e-300)).all())


def node_scores(adj_x: sp.spmatrix, vals: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge scores ``z_pq = Σ_i λ_i (v_i[p] − v_i[q])²`` of the input graph's edges (max-scaled to 1) and each
    node's mean over its edges (max-scaled to 1); returns ``(node_scores, edges, edge_scores)``."""
    upper = sp.triu(sp.csr_matrix(adj_x), k=1).tocoo()
    p, q = upper.row.astype(np.int64), upper.col.astype(np.int64)
    z = ((vecs[p] - vecs[q]) ** 2 * vals[None, :]).sum(axis=1)
    zmax = float(z.max()) if z.size else 0.0
    z = z / zmax if zmax > 0 else z
    n = adj_x.shape[0]
    total = np.bincount(p, weights=z, minlength=n) + np.bincount(q, weights=z, minlength=n)
    degree = np.bincount(p, minlength=n) + np.bincount(q, minlength=n)
    node = total / np.maximum(degree, 1)
    nmax = float(node.max()) if node.size else 0.0
    node = node / nmax if nmax > 0 else node
    return node, np.column_stack([p, q]), z


def spade(inputs: np.ndarray, outputs: np.ndarray, *, k: int = 10, num_eigs: int = 2, solver: str = "auto",
          seed: int = 0) -> SpadeResult:
    """The SPADE score and node scores of a model from its inputs ``(N, ...)`` and outputs ``(N, C)``.

    Outputs are what the output graph is built on: logits (or centred log-probabilities, which equal the
    centred logits), probabilities, or embeddings. Needs only the model's answers — no gradients.
    """
    xin = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    xout = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if xin.shape[0] != xout.shape[0]:
        raise DataError(f"SPADE: {xin.shape[0]} inputs but {xout.shape[0]} outputs")
    if k < 1:
        raise ConfigError(f"SPADE: k must be at least 1, got {k}")
    adj_x, b_in = knn_graph(xin, k)
    adj_y, b_out = knn_graph(xout, k)
    vals, vecs, used = generalized_top(laplacian(adj_x), laplacian(adj_y), num_eigs, solver=solver, seed=seed)
    node, edges, z = node_scores(adj_x, vals, vecs)
    return SpadeResult(score=float(vals[0]), eigenvalues=vals, eigenvectors=vecs, node_scores=node, edges=edges,
                       edge_scores=z, k=min(k, xin.shape[0] - 1), bridges_in=b_in, bridges_out=b_out, solver=used)


def centred_log_probabilities(probabilities: np.ndarray, *, floor: float = float(np.finfo(np.float32).tiny)
                              ) -> np.ndarray:
    """``log p − mean(log p)`` per row: the model's logits up to the per-row constant softmax removes, read
    from probabilities alone (a black-box target's answers). Probabilities are floored at ``floor`` (the
    smallest normal float32, so logit gaps up to about 87 survive; a larger floor would merge the outputs
    of confident predictions into one point)."""
    lp = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), floor, None))
    out: np.ndarray = lp - lp.mean(axis=1, keepdims=True)
    return out


__all__ = ["DENSE_LIMIT", "SpadeResult", "centred_log_probabilities", "generalized_top", "knn_graph", "laplacian",
           "node_scores", "robustness_index", "spade"]
