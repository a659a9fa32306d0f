"""Properties of the AutoAttack ensemble that must hold whatever the budget, norm and version.

- Every broken sample's example is misclassified, inside the eps-ball and the value range; every
  robust sample comes back unchanged and correctly classified.
- The account adds up: ``broken_by`` is None exactly for robust samples and ``"clean"`` exactly for
  samples misclassified before any attack; the robust count after each stage never rises, and each
  stage broke as many samples as the count fell.
- Worst case per sample: the ensemble's robust samples are a subset of those its first stage leaves
  robust when run alone (the first stage sees the same samples with the same seed, so this is
  exact), and its robust accuracy is at most every stage's own (each later stage alone sees more
  samples, hence other random starts: allowed slack one sample).
(The generic ball/range/consistency properties of ``autoattack`` and the apgd attacks run in
``test_attack_properties.py``.)
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.base import perturbation_norm, run_attack
from aisec.attacks.evasion.autoattack import run_autoattack, stages
from aisec.core.types import Norm

N = 16
STEPS = 5
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def batch(digits_test_batch):
    x, y = digits_test_batch
    return x[:N].float(), y[:N].long()


@SETTINGS
@given(data=st.data())
def test_ensemble_account_and_worst_case(data, digits_target, batch):
    x, y = batch
    norm = data.draw(st.sampled_from(["linf", "l2"]), label="norm")
    eps = data.draw(st.floats(0.0, 0.3 if norm == "linf" else 2.0), label="eps")
    version = data.draw(st.sampled_from(["quick", "rand"]), label="version")
    res = run_autoattack(digits_target, x, y, eps=eps, norm=norm, version=version, batch_size=N, seed=0,
                         steps=STEPS)
    lo, hi = digits_target.spec.value_range
    assert float(res.x_adv.min()) >= lo and float(res.x_adv.max()) <= hi
    broken = torch.tensor([b not in (None, "clean") for b in res.broken_by])
    pred = digits_target.predict(res.x_adv).argmax(1)
    assert torch.equal(pred, res.pred_adv)
    assert bool((pred[broken] != y[broken]).all())
    assert float(perturbation_norm(res.x_adv - x, Norm(norm)).max()) <= eps + 1e-5
    assert torch.equal(res.x_adv[res.robust], x[res.robust])
    assert [b is None for b in res.broken_by] == res.robust.tolist()
    assert [b == "clean" for b in res.broken_by] == (~res.clean_correct).tolist()
    assert torch.equal(res.success, broken)
    counts = [int(res.clean_correct.sum()), *res.stage_robust.values()]
    for name, before, after in zip(res.stage_robust, counts, counts[1:], strict=False):
        assert after <= before
        assert sum(b == name for b in res.broken_by) == before - after
    for j, stage in enumerate(stages(version, steps=STEPS)):
        alone = run_attack(stage.attack, digits_target, x, y, {"eps": eps, "norm": norm, **stage.params},
                           batch_size=N, seed=0)
        if j == 0:
            assert bool((alone.robust | ~res.robust).all()), "a sample robust in the ensemble fell to its first stage"
        assert int(res.robust.sum()) <= int(alone.robust.sum()) + 1
