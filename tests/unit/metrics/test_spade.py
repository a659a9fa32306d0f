"""SPADE against a dense exact generalised eigen-solve, its Rayleigh-quotient bound, exact cases (an
isometry scores 1) and the properties its ranking must have (a sharp step in the map ranks first)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.sparse.csgraph import connected_components
from scipy.stats import spearmanr

from aisec.core.errors import DataError
from aisec.metrics import spade as sm
from aisec.metrics.rank_agreement import spearman_agreement


def _cloud(n: int = 80, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d))


def _bumpy(x: np.ndarray, steep: float = 8.0) -> np.ndarray:
    """A smooth but uneven map to 3 outputs (a stand-in for a model's logits)."""
    return np.column_stack([np.sin(steep * x[:, 0]) + x[:, 1], np.tanh(steep * (x[:, 2] - 0.5)), x[:, 3] ** 2])


def _dense_reference(x: np.ndarray, y: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-m eigenpairs of L_X v = λ (L_Y + 11ᵀ) v by scipy.linalg.eigh: the constant direction deflated by a
    rank-one term (not by grounding, as the module does), so the two formulations check each other."""
    ax, _ = sm.knn_graph(x, k)
    ay, _ = sm.knn_graph(y, k)
    lx, ly = sm.laplacian(ax).toarray(), sm.laplacian(ay).toarray()
    n = lx.shape[0]
    vals, vecs = scipy.linalg.eigh(lx, ly + np.ones((n, n)), subset_by_index=[n - m, n - 1])
    return vals[::-1], vecs[:, ::-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_and_node_scores_match_a_dense_exact_generalised_solve(seed: int) -> None:
    x = _cloud(seed=seed)
    y = _bumpy(x)
    res = sm.spade(x, y, k=6, num_eigs=3)
    assert res.solver == "eigsh"
    vals, vecs = _dense_reference(x, y, 6, 3)
    np.testing.assert_allclose(res.eigenvalues, vals, rtol=1e-8)
    assert res.score == pytest.approx(vals[0], rel=1e-8) and res.score > 1
    ax, _ = sm.knn_graph(x, 6)
    node, _, _ = sm.node_scores(ax, vals, vecs)  # dense eigenvectors: same node scores (sign and shift free)
    np.testing.assert_allclose(res.node_scores, node, atol=1e-6)
    # the sparse vectors are L_Y-normalised eigenvectors of the full, ungrounded pencil
    ay, _ = sm.knn_graph(y, 6)
    lx, ly = sm.laplacian(ax), sm.laplacian(ay)
    v = res.eigenvectors
    np.testing.assert_allclose(np.einsum("ni,ni->i", v, ly @ v), 1.0, rtol=1e-6)
    np.testing.assert_allclose(lx @ v - (ly @ v) * res.eigenvalues, 0.0, atol=1e-6 * res.score)


def test_the_score_bounds_every_rayleigh_quotient_and_the_eigenvector_attains_it() -> None:
    x = _cloud(120, seed=3)
    y = _bumpy(x, steep=12.0)
    res = sm.spade(x, y, k=8)
    ax, _ = sm.knn_graph(x, 8)
    ay, _ = sm.knn_graph(y, 8)
    lx, ly = sm.laplacian(ax), sm.laplacian(ay)
    z = np.random.default_rng(0).standard_normal((x.shape[0], 500))
    q = np.einsum("ni,ni->i", z, lx @ z) / np.einsum("ni,ni->i", z, ly @ z)
    assert q.max() <= res.score * (1 + 1e-9)
    v = res.eigenvectors[:, 0]
    assert float(v @ (lx @ v)) / float(v @ (ly @ v)) == pytest.approx(res.score, rel=1e-8)


def test_a_map_that_keeps_every_neighbourhood_scores_exactly_one() -> None:
    x = _cloud(100, d=3, seed=4)
    rot, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    res = sm.spade(x, 7.5 * x @ rot + 3.0, k=5, num_eigs=2)  # a similarity: the same k-NN graph
    np.testing.assert_allclose(res.eigenvalues, [1.0, 1.0], rtol=1e-9)
    assert sm.robustness_index(res.score) == pytest.approx(1.0)


def test_the_score_is_blind_to_the_scale_of_inputs_and_outputs() -> None:
    x = _cloud(90, seed=5)
    y = _bumpy(x)
    a = sm.spade(x, y, k=6).score
    assert sm.spade(1000.0 * x, 0.01 * y, k=6).score == pytest.approx(a, rel=1e-9)


def test_a_sharper_step_scores_higher_and_its_edge_ranks_first() -> None:
    rng = np.random.default_rng(6)
    x = rng.random((400, 2))
    scores = []
    for steep in (0.0, 5.0, 200.0):
        y = np.column_stack([x[:, 0], x[:, 1], 3.0 * np.tanh(steep * (x[:, 0] - 0.5))])
        res = sm.spade(x, y, k=10)
        scores.append(res.score)
    assert scores[0] == pytest.approx(1.0, rel=1e-6)
    assert scores[0] < scores[1] < scores[2]
    top = res.ranking()[:20]  # the steepest map: the least robust samples sit on the step
    near = np.abs(x[top, 0] - 0.5) < 0.1
    assert near.mean() >= 0.9, x[top, 0]
    rho = spearmanr(res.node_scores, -np.abs(x[:, 0] - 0.5)).statistic
    assert rho > 0.3


def test_disconnected_outputs_are_bridged_by_components_minus_one_shortest_edges() -> None:
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 80.0]])
    y = np.concatenate([c + rng.standard_normal((30, 2)) for c in centres])
    from sklearn.neighbors import kneighbors_graph

    raw = kneighbors_graph(y, 3)
    m0 = connected_components(raw + raw.T, directed=False)[0]  # the plain k-NN graph: one part per blob or more
    assert m0 >= 3
    adj, bridges = sm.knn_graph(y, 3)
    assert connected_components(adj, directed=False)[0] == 1
    assert bridges == m0 - 1  # Borůvka adds a spanning forest of the components: no edge more than needed
    assert adj.nnz == (raw + raw.T > 0).sum() + 2 * bridges
    x = rng.random((90, 3))
    res = sm.spade(x, y, k=3)
    assert res.bridges_out == m0 - 1 and np.isfinite(res.score)


def test_an_invalid_sparse_answer_falls_back_to_the_dense_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference's failure mode: the sparse solver returning a negative 'largest' eigenvalue."""
    x = _cloud(60, seed=8)
    y = _bumpy(x)
    good = sm.spade(x, y, k=5)

    def wrong(a, b, num_eigs, seed):  # type: ignore[no-untyped-def]
        return -np.ones(num_eigs), np.ones((a.shape[0], num_eigs))

    monkeypatch.setattr(sm, "_eigsh", wrong)
    res = sm.spade(x, y, k=5)
    assert res.solver == "dense" and res.score == pytest.approx(good.score, rel=1e-8)
    with pytest.raises(DataError, match="invalid eigenpair"):
        sm.spade(x, y, k=5, solver="eigsh")


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="at least 3 samples"):
        sm.spade(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(DataError, match="NaN"):
        sm.spade(np.full((10, 3), np.nan), np.zeros((10, 2)))
    with pytest.raises(DataError, match="10 inputs but 9 outputs"):
        sm.spade(np.zeros((10, 3)), np.zeros((9, 2)))


def test_centred_log_probabilities_are_the_centred_logits() -> None:
    z = np.random.default_rng(9).standard_normal((20, 5)) * 3
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(sm.centred_log_probabilities(p), z - z.mean(1, keepdims=True), atol=1e-9)
    # a confident float32 softmax (logit gaps of 40-60) keeps its logits apart rather than flooring them together
    zc = np.array([[0.0, -40.0, -60.0], [0.0, -45.0, -50.0]])
    pc = (np.exp(zc) / np.exp(zc).sum(1, keepdims=True)).astype(np.float32)
    np.testing.assert_allclose(sm.centred_log_probabilities(pc), zc - zc.mean(1, keepdims=True), atol=1e-4)


def test_the_index_is_one_over_the_score_capped_at_one() -> None:
    assert sm.robustness_index(4.0) == 0.25
    assert sm.robustness_index(0.5) == 1.0
    assert sm.robustness_index(float("inf")) == 0.0


def test_spearman_agreement_matches_scipy_and_its_interval_holds_it() -> None:
    rng = np.random.default_rng(10)
    a = rng.standard_normal(60)
    b = a + rng.standard_normal(60)
    r = spearman_agreement(a, b, resamples=300)
    assert r.rho == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert r.interval.low < r.rho < r.interval.high and r.n == 60
    assert spearman_agreement(a, 2 * a + 1, resamples=50).rho == pytest.approx(1.0)
    noise = spearman_agreement(a, rng.standard_normal(60), resamples=300)
    assert noise.interval.low < 0 < noise.interval.high
    inf = spearman_agreement(np.arange(5.0), np.array([1.0, 2.0, 3.0, np.inf, np.inf]), resamples=0)
    assert inf.rho > 0.9  # never-fooled samples rank as the most robust
