"""aisec's evasion attacks against ART and torchattacks on the same model, samples and parameters.

Tolerances (n = number of samples):
- FGSM, BIM and PGD without random start are deterministic and compute the same math as the
  references, so robust accuracy must agree to one sample (float ties in ``sign`` aside) and the
  FGSM examples themselves to float precision.
- PGD with a random start differs only through the random draw. The two runs are paired (same
  samples), so their difference is at most that of two binomial proportions; we allow three
  standard errors of a binomial, 3 * sqrt(p (1 - p) / n), which still catches gross errors such as a
  wrong gradient sign (robust accuracy = clean accuracy) or a missing projection (robust accuracy 0).
- Minimum-norm attacks are compared on success rate (same three-SE rule) and on the median
  perturbation norm: DeepFool and JSMA implement the same algorithm as their reference (to 5% /
  exactly); C&W differs in the optimiser (Adam here, as in the paper; ART uses gradient descent with
  a line search), so its median L2 must agree to 25% on samples both found.
- L2 Square (random search) is compared on success rate at equal eps and queries, three-SE rule,
  with torchattacks' ``Square(norm="L2")`` (a port of the authors' code) given the same loss (the
  log-probability margin). ART's ``SquareAttack(norm=2)`` is only a lower bound (aisec must not be
  more than three SE below it): ART 1.20 divides the new window by its norm budget where the
  authors multiply, which makes it markedly weaker (0.48 vs 0.86 on 128 digits at eps 1.0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack

art_cls = pytest.importorskip("art.estimators.classification")
art_ev = pytest.importorskip("art.attacks.evasion")
torchattacks = pytest.importorskip("torchattacks")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

N = 64
EPS_LINF = 0.1
EPS_L2 = 0.5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # A tiny model gains nothing from threads; on a shared machine they only contend.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(digits_test_batch):
    x, y = digits_test_batch
    return x[:N].float().contiguous(), y[:N].long()


@pytest.fixture(scope="module")
def art_clf(digits_target):
    return art_cls.PyTorchClassifier(
        digits_target.module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def _robust(module: torch.nn.Module, x: torch.Tensor, x_adv, y: torch.Tensor) -> float:
    x_adv = torch.as_tensor(np.asarray(x_adv, dtype=np.float32))
    with torch.no_grad():
        pc = module(x).argmax(1)
        pa = module(x_adv).argmax(1)
    return float(((pc == y) & (pa == y)).float().mean())


def _three_se(p: float, n: int) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.05) / n)


def test_fgsm_matches_art_and_torchattacks(digits_target, data, art_clf):
    x, y = data
    out = run_attack("fgsm", digits_target, x, y, {"eps": EPS_LINF})
    x_art = art_ev.FastGradientMethod(art_clf, eps=EPS_LINF, batch_size=N).generate(x.numpy(), y.numpy())
    x_ta = torchattacks.FGSM(digits_target.module, eps=EPS_LINF)(x, y)
    torch.testing.assert_close(out.x_adv, torch.from_numpy(x_art), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.x_adv, x_ta, atol=1e-5, rtol=0)
    ra = float(out.robust.float().mean())
    assert abs(ra - _robust(digits_target.module, x, x_art, y)) <= 1 / N
    assert abs(ra - _robust(digits_target.module, x, x_ta, y)) <= 1 / N


def test_fgsm_l2_matches_art(digits_target, data, art_clf):
    x, y = data
    out = run_attack("fgsm", digits_target, x, y, {"eps": EPS_L2, "norm": "l2"})
    x_art = art_ev.FastGradientMethod(art_clf, eps=EPS_L2, norm=2, batch_size=N).generate(x.numpy(), y.numpy())
    torch.testing.assert_close(out.x_adv, torch.from_numpy(x_art), atol=1e-5, rtol=0)
    assert abs(float(out.robust.float().mean()) - _robust(digits_target.module, x, x_art, y)) <= 1 / N


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_bim_and_deterministic_pgd_match_art(digits_target, data, art_clf, norm):
    x, y = data
    eps = EPS_LINF if norm == "linf" else EPS_L2
    art_norm = np.inf if norm == "linf" else 2
    x_art = art_ev.ProjectedGradientDescent(
        art_clf, norm=art_norm, eps=eps, eps_step=eps / 4, max_iter=10, num_random_init=0,
        batch_size=N, verbose=False,
    ).generate(x.numpy(), y.numpy())
    ref = _robust(digits_target.module, x, x_art, y)
    bim = run_attack("bim", digits_target, x, y, {"eps": eps, "norm": norm, "steps": 10})
    pgd = run_attack(
        "pgd", digits_target, x, y,
        {"eps": eps, "norm": norm, "steps": 10, "step_size": eps / 4, "random_start": False},
    )
    assert abs(float(bim.robust.float().mean()) - ref) <= 1 / N
    assert abs(float(pgd.robust.float().mean()) - ref) <= 1 / N
    if norm == "linf":
        x_ta = torchattacks.BIM(digits_target.module, eps=eps, alpha=eps / 4, steps=10)(x, y)
        assert abs(float(bim.robust.float().mean()) - _robust(digits_target.module, x, x_ta, y)) <= 1 / N


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_random_start_matches_art_and_torchattacks(digits_target, data, art_clf, norm):
    x, y = data
    eps = EPS_LINF if norm == "linf" else EPS_L2
    out = run_attack("pgd", digits_target, x, y, {"eps": eps, "norm": norm, "steps": 10, "step_size": eps / 4})
    ra = float(out.robust.float().mean())
    torch.manual_seed(0)
    np.random.seed(0)
    x_art = art_ev.ProjectedGradientDescent(
        art_clf, norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=eps / 4, max_iter=10,
        num_random_init=1, batch_size=N, verbose=False,
    ).generate(x.numpy(), y.numpy())
    ta_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    x_ta = ta_cls(digits_target.module, eps=eps, alpha=eps / 4, steps=10)(x, y)
    for ref in (_robust(digits_target.module, x, x_art, y), _robust(digits_target.module, x, x_ta, y)):
        assert abs(ra - ref) <= _three_se(ref, N), (ra, ref)


def test_deepfool_matches_art(digits_target, data, art_clf):
    x, y = data
    out = run_attack("deepfool", digits_target, x, y, {"norm": "l2", "steps": 50, "overshoot": 0.02})
    x_art = art_ev.DeepFool(art_clf, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=N, verbose=False).generate(
        x.numpy()
    )
    x_art = torch.from_numpy(x_art)
    with torch.no_grad():
        pc = digits_target.module(x).argmax(1)
        pa = digits_target.module(x_art).argmax(1)
    s_art = (pa != y) & (pc == y)
    d_art = (x_art - x).flatten(1).norm(dim=1)
    sr, sr_art = float(out.success.float().mean()), float(s_art.float().mean())
    assert abs(sr - sr_art) <= _three_se(sr_art, N)
    assert abs(float(out.robust.float().mean()) - _robust(digits_target.module, x, x_art, y)) <= _three_se(sr_art, N)
    med, med_art = float(out.distance[out.success].median()), float(d_art[s_art].median())
    assert med == pytest.approx(med_art, rel=0.05)


def test_cw_l2_matches_art(digits_target, data, art_clf):
    x, y = data[0][:32], data[1][:32]
    n = len(y)
    cfg = {"steps": 20, "binary_search_steps": 5, "initial_const": 1.0, "lr": 0.1}
    out = run_attack("cw", digits_target, x, y, cfg)
    x_art = art_ev.CarliniL2Method(
        art_clf, confidence=0.0, learning_rate=0.1, binary_search_steps=5, max_iter=20,
        initial_const=1.0, batch_size=n, verbose=False,
    ).generate(x.numpy(), y.numpy())
    x_art = torch.from_numpy(x_art)
    with torch.no_grad():
        pc = digits_target.module(x).argmax(1)
        pa = digits_target.module(x_art).argmax(1)
    s_art = (pa != y) & (pc == y)
    d_art = (x_art - x).flatten(1).norm(dim=1)
    sr, sr_art = float(out.success.float().mean()), float(s_art.float().mean())
    assert abs(sr - sr_art) <= _three_se(sr_art, n)
    both = out.success & s_art
    assert both.sum() >= n // 2
    ratio = float((out.distance[both] / d_art[both]).median())
    assert 0.75 <= ratio <= 1.25, ratio


def test_jsma_matches_torchattacks(digits_target, data):
    x, y = data
    tl = (y + 1) % 10
    # gamma = 0.25 of 64 features = 8 pairs under both floor (paper, aisec) and ceil (torchattacks).
    out = run_attack("jsma", digits_target, x, y, {"theta": 1.0, "gamma": 0.25}, target_labels=tl)
    atk = torchattacks.JSMA(digits_target.module, theta=1.0, gamma=0.25)
    atk.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % 10)
    x_ta = atk(x, y)
    with torch.no_grad():
        s_ta = digits_target.module(x_ta).argmax(1) == tl
    l0_ta = ((x_ta - x).abs() > 1e-8).flatten(1).float().mean(1)
    assert abs(int(out.success.sum()) - int(s_ta.sum())) <= 1
    assert float(out.distance[out.success].mean()) == pytest.approx(float(l0_ta[s_ta].mean()), abs=0.01)


# ART's L2 initialisation divides 0/0 on 8x8 images (1-pixel tiles) and skips it: a RuntimeWarning, not an error.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_square_l2_matches_torchattacks_and_bounds_art(digits_target, data):
    import random

    from aisec.targets.sklearn import ProbaTarget

    x, y = data
    eps, queries = 1.0, 300
    module = digits_target.module

    def logp(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.log_softmax(module(torch.as_tensor(a, dtype=torch.float32).view(-1, 1, 8, 8)), 1).numpy()

    class _Scores:
        def predict_proba(self, a: np.ndarray) -> np.ndarray:
            return np.exp(logp(a))

    class _LogSoftmax(torch.nn.Module):  # torchattacks' logit margin = aisec's log-probability margin
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(module(a), 1)

    target = ProbaTarget(_Scores(), input_shape=(1, 8, 8), num_classes=10, modality="image")
    out = run_attack("square", target, x, y, {"norm": "l2", "eps": eps, "max_queries": queries}, batch_size=N)
    x_ta = torchattacks.Square(_LogSoftmax().eval(), norm="L2", eps=eps, n_queries=queries, p_init=0.8, seed=0)(x, y)
    np.random.seed(0)
    random.seed(0)
    clf = art_cls.BlackBoxClassifierNeuralNetwork(logp, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0))
    x_art = art_ev.SquareAttack(clf, norm=2, eps=eps, max_iter=queries, p_init=0.8, verbose=False).generate(
        x.numpy(), y=np.eye(10)[y.numpy()]
    )
    clean = out.clean_correct
    s_ours = float(out.success.float().mean())
    s_ta, s_art = (
        float(((module(torch.as_tensor(xa)).argmax(1) != y) & clean).float().mean()) for xa in (x_ta, x_art)
    )
    assert float((out.x_adv - x).flatten(1).norm(dim=1).max()) <= eps + 1e-5
    assert abs(s_ours - s_ta) <= _three_se(s_ta, N), (s_ours, s_ta)
    assert s_ours >= s_art - _three_se(s_art, N), (s_ours, s_art)
