"""aisec's FAB and FAB-T against the authors' code (pyautoattack's ``FABAttack_PT``) on the digits CNN.

Same model, samples, eps, steps, ``alpha_max``/``eta``/``beta``. Tolerances (n = number of samples):
- One run, no restart, is deterministic in both and computes the same math (the projection is
  solved in closed form here, by bisection there; both are exact up to float error). So the
  success rate at eps must agree to one sample (a float tie at the decision boundary), and the
  median distance of what both found to 1%.
- FAB-T tries the same runner-up classes in the same order, and in both a sample broken within
  eps skips the remaining classes, so the success rate at eps must also agree to one sample. The
  reference returns the clean input for a sample not broken within eps while aisec (minimum norm)
  returns the closest example it found, so the distances are compared only on the samples both
  broke within eps (median to 1%).
- With random restarts the two differ only in the random draws: the success rate at eps must agree
  within three binomial standard errors, 3 sqrt(p (1 - p) / n) (as in test_evasion_reference.py).
Steps are cut to 20 (AutoAttack: 100) and FAB-T's classes to 4 (AutoAttack: 9) to keep the file
fast; the comparison does not depend on either.
"""

from __future__ import annotations

import math

import pytest
import torch

from aisec.attacks.base import perturbation_norm, run_attack
from aisec.core.types import Norm

fab_pt = pytest.importorskip("pyautoattack.fab_pt")

N = 32
STEPS = 20
EPS = {"linf": 0.1, "l2": 0.5}
REF_NORM = {"linf": "Linf", "l2": "L2"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(digits_test_batch):
    x, y = digits_test_batch
    return x[:N].float().contiguous(), y[:N].long()


def _reference(module, x, y, norm: str, eps: float, *, targeted: bool, restarts: int = 1, n_target_classes: int = 9):
    atk = fab_pt.FABAttack_PT(module, norm=REF_NORM[norm], n_restarts=restarts, n_iter=STEPS, eps=eps,
                              targeted=targeted, n_target_classes=n_target_classes, seed=0, device="cpu")
    x_adv = atk.perturb(x, y)
    with torch.no_grad():
        fooled = (module(x_adv).argmax(1) != y) & (module(x).argmax(1) == y)
    return fooled, perturbation_norm(x_adv - x, Norm(norm))


def _three_se(p: float, n: int) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.05) / n)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_matches_autoattack(digits_target, data, norm):
    x, y = data
    eps = EPS[norm]
    out = run_attack("fab", digits_target, x, y, {"norm": norm, "eps": eps, "steps": STEPS})
    # With one run the reference's eps changes nothing but which examples it keeps: give it a huge
    # one to read every distance it found, then judge both at eps.
    fooled_ref, d_ref = _reference(digits_target.module, x, y, norm, 1e6, targeted=False)
    ours_at_eps = out.success & (out.distance <= eps + 1e-6)
    ref_at_eps = fooled_ref & (d_ref <= eps + 1e-6)
    assert abs(int(ours_at_eps.sum()) - int(ref_at_eps.sum())) <= 1
    assert 0 < int(ref_at_eps.sum()) < N  # eps is informative: neither none nor all
    both = out.success & fooled_ref
    assert int(both.sum()) >= N // 2
    med, med_ref = float(out.distance[both].median()), float(d_ref[both].median())
    assert med == pytest.approx(med_ref, rel=0.01)
    assert float(perturbation_norm(out.x_adv - x, Norm(norm)).sub(out.distance).abs().max()) < 1e-6
    assert float(out.x_adv.min()) >= 0 and float(out.x_adv.max()) <= 1
    assert len(out.loss_trace) == STEPS  # one trace_margin per step (convergence judged from it)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_matches_autoattack(digits_target, data, norm):
    x, y = data
    eps = EPS[norm]
    out = run_attack("fab-t", digits_target, x, y,
                     {"norm": norm, "eps": eps, "steps": STEPS, "n_target_classes": 4})
    fooled_ref, d_ref = _reference(digits_target.module, x, y, norm, eps, targeted=True, n_target_classes=4)
    ours_at_eps = out.success & (out.distance <= eps + 1e-6)
    ref_at_eps = fooled_ref & (d_ref <= eps + 1e-6)
    assert abs(int(ours_at_eps.sum()) - int(ref_at_eps.sum())) <= 1
    assert 0 < int(ref_at_eps.sum()) < N
    both = ours_at_eps & ref_at_eps
    assert STEPS <= len(out.loss_trace) <= 4 * STEPS  # classes after the first only while samples remain
    assert float(out.distance[both].median()) == pytest.approx(float(d_ref[both].median()), rel=0.01)


@pytest.mark.slow
def test_fab_restarts_match_autoattack(digits_target, data):
    x, y = data
    eps = EPS["l2"] * 0.8  # below the single-run median, so the restarts have samples to work on
    out = run_attack("fab", digits_target, x, y, {"norm": "l2", "eps": eps, "steps": STEPS, "restarts": 2})
    single = run_attack("fab", digits_target, x, y, {"norm": "l2", "eps": eps, "steps": STEPS})
    fooled_ref, d_ref = _reference(digits_target.module, x, y, "l2", eps, targeted=False, restarts=2)
    sr = float((out.success & (out.distance <= eps + 1e-6)).float().mean())
    sr_ref = float((fooled_ref & (d_ref <= eps + 1e-6)).float().mean())
    assert abs(sr - sr_ref) <= _three_se(sr_ref, N), (sr, sr_ref)
    # Restarts keep the closest example: never farther than one run, for every sample.
    assert bool((out.distance[single.success] <= single.distance[single.success] + 1e-6).all())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stop_at_eps_breaks_the_same_samples_within_eps(digits_target, data, norm):
    """``stop_at_eps`` (the ensemble's reading) drops a sample at the step it is broken within eps: the same samples
    are broken at eps as without it and as the reference, and the full search's
    distances are never larger (it keeps shrinking them)."""
    x, y = data
    eps = EPS[norm]
    base = {"norm": norm, "eps": eps, "steps": STEPS, "n_target_classes": 4}
    full = run_attack("fab-t", digits_target, x, y, base)
    stop = run_attack("fab-t", digits_target, x, y, {**base, "stop_at_eps": True})
    at = [o.success & (o.distance <= eps + 1e-6) for o in (full, stop)]
    assert torch.equal(at[0], at[1]) and int(at[1].sum()) > 0
    assert torch.equal(full.success & ~at[0], stop.success & ~at[1])  # beyond eps: both found the same ones
    assert bool((full.distance[at[0]] <= stop.distance[at[1]] + 1e-6).all())
    fooled_ref, d_ref = _reference(digits_target.module, x, y, norm, eps, targeted=True, n_target_classes=4)
    assert abs(int(at[1].sum()) - int((fooled_ref & (d_ref <= eps + 1e-6)).sum())) <= 1
