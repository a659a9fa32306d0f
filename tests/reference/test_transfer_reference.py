"""The transfer attack against ART on the same surrogate, victim and samples.

Setting: the victim is the digits CNN behind a zero-gradient output (logits +10 for its arg-max
class, -10 elsewhere, plus ``0 * logits`` so autograd runs): it predicts exactly as the CNN but
every gradient is zero, the textbook masked gradient. The surrogate is an independently trained
digits MLP (another seed, another architecture), as an attacker could train from public data.

Checks and tolerances (n = samples the victim classifies correctly, about 62 of 64):
- white-box PGD on the victim finds (almost) nothing: its gradient is 0, only the random start
  moves the input; transfer PGD must beat it by at least 0.3 in success rate (measured: 0.02 vs 0.54).
- ART's ``ProjectedGradientDescent`` crafted on the same surrogate with the same eps, step size,
  steps and one random start, replayed on the victim, must reach the same transfer success rate
  within three binomial standard errors, 3 * sqrt(p (1 - p) / n); the runs differ only by the random
  start.
- queries: with a given surrogate the victim answers only the two scoring passes (2 per sample);
  with an extracted one also ``max_queries`` labelling queries per sample.
- a surrogate given as a model file (``surrogate``, a TorchScript archive, through ``load_target``)
  gives the same examples as the same module bound in Python (same seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from aisec.attacks.base import perturbation_norm, run_attack
from aisec.attacks.evasion.transfer import transfer_attack, using_surrogate
from aisec.core.errors import ConfigError
from aisec.core.types import Norm
from aisec.models.train import fit
from aisec.targets.torch import TorchTarget

art_cls = pytest.importorskip("art.estimators.classification")
art_ev = pytest.importorskip("art.attacks.evasion")

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

N = 64
EPS = 0.15
STEPS = 10


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class ZeroGradient(nn.Module):
    """The model's decisions with +-10 logits and a zero gradient everywhere."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        o = self.m(z)
        return 20 * nn.functional.one_hot(o.argmax(1), o.shape[1]).float() - 10 + 0 * o


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture(scope="module")
def setting(digits_model, digits_split, digits_test_batch):
    train, _ = digits_split
    torch.manual_seed(1)
    surrogate = fit(mlp(), train.x, train.y, epochs=10, seed=1)
    victim = TorchTarget(ZeroGradient(digits_model), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    x, y = digits_test_batch
    return victim, surrogate, x[:N].float(), y[:N].long()


def _three_se(p: float, n: int) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.05 * 0.95) / n)  # floor: p near 0 or 1 still gets a band


def test_transfer_beats_white_box_pgd_on_a_masked_gradient_and_matches_art(setting):
    victim, surrogate, x, y = setting
    white = run_attack("pgd", victim, x, y, {"eps": EPS, "steps": STEPS})
    out = transfer_attack(victim, surrogate, x, y, eps=EPS, steps=STEPS)
    ok = out.clean_correct
    n = int(ok.sum())
    assert n >= 0.9 * N
    assert out.queries == 2 * N  # clean and adversarial predictions only
    assert float(perturbation_norm(out.x_adv - x, Norm.LINF).max()) <= EPS + 1e-6
    rate = float(out.success.sum()) / n
    white_rate = float(white.success.sum()) / n
    assert rate >= white_rate + 0.3, (rate, white_rate)

    clf = art_cls.PyTorchClassifier(surrogate, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                    clip_values=(0.0, 1.0), device_type="cpu")
    atk = art_ev.ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=2.5 * EPS / STEPS, max_iter=STEPS,
                                          num_random_init=1, batch_size=N, verbose=False)
    np.random.seed(0)
    x_art = torch.as_tensor(atk.generate(x.numpy(), y=y.numpy())).float()
    with torch.no_grad():
        fooled_art = (victim.predict(x_art).argmax(1) != y) & ok
    art_rate = float(fooled_art.sum()) / n
    assert abs(rate - art_rate) <= _three_se(art_rate, n), (rate, art_rate)


def test_surrogate_from_a_model_file_equals_the_bound_module(setting, tmp_path):
    victim, surrogate, x, y = setting
    x, y = x[:16], y[:16]
    path = tmp_path / "sur.pt"
    torch.jit.trace(surrogate, x[:1]).save(str(path))  # TorchScript: load_target needs no architecture
    bound = transfer_attack(victim, surrogate, x, y, eps=EPS, steps=3)
    loaded = run_attack("transfer", victim, x, y, {"eps": EPS, "steps": 3, "surrogate": str(path)})
    assert torch.allclose(bound.x_adv, loaded.x_adv)
    with using_surrogate(surrogate), pytest.raises(ConfigError, match="two surrogates"):
        run_attack("transfer", victim, x, y, {"surrogate": str(path)})


def test_extracted_surrogate_spends_counted_queries(setting):
    victim, _, x, y = setting
    x, y = x[:32], y[:32]
    out = run_attack("transfer", victim, x, y, {"eps": EPS, "steps": STEPS, "max_queries": 8, "epochs": 8})
    assert out.queries == (8 + 2) * 32  # labelling pool + clean and adversarial predictions
    white = run_attack("pgd", victim, x, y, {"eps": EPS, "steps": STEPS})
    assert int(out.success.sum()) > int(white.success.sum()) + 3


def test_surrogate_mismatch_is_a_config_error(setting):
    victim, _, x, y = setting
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ConfigError, match="classes"):
        transfer_attack(victim, TorchTarget(wrong, input_shape=(1, 8, 8), num_classes=3, device="cpu"), x, y)


def test_more_candidates_only_add_successes_and_count_their_queries(setting):
    """``candidates=k``: the untargeted example, then targeted ones at the surrogate's next classes, each checked on
    the victim with one query; a sample the single example broke stays broken (same seed, same first example)."""
    victim, surrogate, x, y = setting
    one = transfer_attack(victim, surrogate, x, y, eps=EPS, steps=STEPS)
    many = transfer_attack(victim, surrogate, x, y, eps=EPS, steps=STEPS, candidates=5)
    assert bool((many.success | ~one.success).all())  # every earlier success kept
    assert int(many.success.sum()) > int(one.success.sum())  # measured 33 -> 41 of 61
    assert float(perturbation_norm(many.x_adv - x, Norm.LINF).max()) <= EPS + 1e-6
    assert 3 * N <= many.queries <= (2 + 5) * N  # the two scoring passes plus one query per candidate tried
    broken_late = many.success & ~one.success
    with torch.no_grad():
        assert bool((victim.predict(many.x_adv[broken_late]).argmax(1) != y[broken_late]).all())
