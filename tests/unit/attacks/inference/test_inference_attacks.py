from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from aisec.attacks.inference.base import (
    INFERENCE_ATTACKS,
    MembershipTask,
    balanced_halves,
    get_inference_attack,
    logit_confidence,
)
from aisec.attacks.inference.lira import split_in_out
from aisec.core.errors import CapabilityError, ConfigError
from aisec.core.target import TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.metrics.membership import membership_metrics

get_inference_attack("loss")  # import every attack module so the table below is complete
ALL = sorted(INFERENCE_ATTACKS)


def _auc(scores, task):
    return membership_metrics(scores.members.numpy(), scores.nonmembers.numpy())


def test_registry_holds_every_attack():
    assert {"loss", "confidence", "gap", "label_only", "shadow", "lira", "rmia"} <= set(ALL)
    assert get_inference_attack("LiRA").name == "lira"
    with pytest.raises(ConfigError, match="known"):
        get_inference_attack("nope")


@pytest.mark.parametrize("name", ALL)
def test_conformance_every_attack_scores_every_record_deterministically(name, memorising_task):
    info = get_inference_attack(name)
    a = info.cls().run(memorising_task, info.cls.Params())
    assert a.members.shape == (memorising_task.x_in.shape[0],)
    assert a.nonmembers.shape == (memorising_task.x_out.shape[0],)
    assert a.members.dtype == a.nonmembers.dtype == torch.float64
    assert torch.isfinite(a.members).all() and torch.isfinite(a.nonmembers).all()
    # Same task and seed, same scores (models are trained once per task; see test_recipe for training).
    b = info.cls().run(memorising_task, info.cls.Params())
    assert torch.equal(a.members, b.members) and torch.equal(a.nonmembers, b.nonmembers)


@pytest.mark.parametrize("name,params", [
    ("loss", {}), ("confidence", {"statistic": "mentr"}), ("gap", {}), ("label_only", {}),
    ("lira", {"online": False}), ("lira", {"online": True, "fixed_variance": True}), ("rmia", {}),
])
def test_memorising_model_leaks(name, params, memorising_task):
    info = get_inference_attack(name)
    m = _auc(info.cls().run(memorising_task, info.cls.Params(**params)), memorising_task)
    assert m.auc_ci.low > 0.5, (name, m.auc, m.auc_ci)


@pytest.mark.parametrize("name,params", [("loss", {}), ("confidence", {}), ("lira", {"online": False})])
def test_never_seen_members_give_chance_auc(name, params, unseen, make_task):
    task = make_task(unseen, reference_models=4)
    info = get_inference_attack(name)
    m = _auc(info.cls().run(task, info.cls.Params(**params)), task)
    assert m.auc_ci.contains(0.5), (name, m.auc, m.auc_ci)
    assert abs(m.auc - 0.5) < 0.1


def test_threshold_attack_scores_match_their_definitions(memorising_task):
    t = memorising_task
    with torch.no_grad():
        p = torch.softmax(t.target.logits(t.x_in).double(), 1)
    loss = get_inference_attack("loss").cls().run(t, get_inference_attack("loss").cls.Params())
    expected = -torch.nn.functional.nll_loss(torch.log(p), t.y_in, reduction="none")
    assert torch.allclose(loss.members, expected, atol=1e-9)
    conf = get_inference_attack("confidence").cls
    s = conf().run(t, conf.Params(statistic="mentr")).members
    py = p.gather(1, t.y_in[:, None])[:, 0]
    mentr = -(1 - py) * torch.log(py) - (p * torch.log(1 - p)).sum(1) + py * torch.log(1 - py)
    assert torch.allclose(s, -mentr, atol=1e-6)


def test_logit_confidence_is_stable_and_matches_formula():
    lp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0], [50.0, -50.0, 0.0]], dtype=torch.float64), 1)
    y = torch.tensor([0, 0])
    p = lp.exp()
    phi = logit_confidence(lp, y)
    assert phi[0] == pytest.approx(float(torch.log(p[0, 0]) - torch.log(p[0, 1] + p[0, 2])))
    assert phi[1] == pytest.approx(50.0, abs=1e-9)  # log(1-p) would be -inf in float32
    assert torch.isfinite(phi).all()


def test_balanced_halves_and_split_in_out():
    keep = balanced_halves(6, 50, seed=3)
    assert (keep.sum(0) == 3).all()
    scores = torch.randn(2, 6, 50, dtype=torch.float64)
    s_in, s_out = split_in_out(scores, keep)
    for j in range(50):
        assert torch.equal(s_in[:, :, j].sort(1).values, scores[:, keep[:, j], j].sort(1).values)
        assert torch.equal(s_out[:, :, j].sort(1).values, scores[:, ~keep[:, j], j].sort(1).values)
    with pytest.raises(ConfigError):
        balanced_halves(1, 10, seed=0)


def test_lira_matches_the_reference_code_formula(memorising, make_task):
    """Online LiRA on synthetic reference scores equals scipy's per-record computation (Carlini's plot.py)."""
    t = make_task(memorising)
    n = t.x_in.shape[0] + t.x_out.shape[0]
    k = 6
    keep = balanced_halves(k, n, seed=1)
    g = torch.Generator().manual_seed(0)
    ref_lp = torch.log_softmax(torch.randn(k, n, 10, generator=g, dtype=torch.float64) * 3, -1)
    t.cache["reference"] = (None, keep)
    t.cache["reference_lp:none"] = ref_lp
    lira = get_inference_attack("lira").cls
    y = torch.cat([t.y_in, t.y_out])
    phi_ref = logit_confidence(ref_lp, y).numpy()
    phi_t = logit_confidence(torch.cat(t.target_log_probs()), y).numpy()
    kn = keep.numpy()
    on = lira().run(t, lira.Params(online=True))
    off = lira().run(t, lira.Params(online=False))
    got_on = torch.cat([on.members, on.nonmembers]).numpy()
    got_off = torch.cat([off.members, off.nonmembers]).numpy()
    for j in range(0, n, 37):
        a, b = phi_ref[kn[:, j], j], phi_ref[~kn[:, j], j]
        want = stats.norm.logpdf(phi_t[j], np.median(a), a.std(ddof=1)) - \
            stats.norm.logpdf(phi_t[j], np.median(b), b.std(ddof=1))
        assert got_on[j] == pytest.approx(want, rel=1e-6, abs=1e-6)
        z = (phi_t[j] - np.median(b)) / b.std(ddof=1)
        assert got_off[j] == pytest.approx(-stats.norm.logsf(z), rel=1e-6, abs=1e-6)


class _LabelsOnly:
    """A black box that answers one-hot labels only."""

    def __init__(self, target):
        self._t = target
        self._spec = TargetSpec(name="labels-only", modality=Modality.IMAGE, input_shape=(1, 8, 8), num_classes=10,
                                access=Access.BLACK, output=OutputKind.LABELS,
                                capabilities=frozenset({Capability.LABELS_ONLY}))

    @property
    def spec(self):
        return self._spec

    @property
    def queries(self):
        return 0

    def predict(self, x):
        return torch.nn.functional.one_hot(self._t.predict(x).argmax(1), 10).float()

    def logits(self, x):
        raise CapabilityError("labels only")


def test_label_only_attacks_work_on_labels_only_targets(memorising):
    target, (x_in, y_in), (x_out, y_out) = memorising
    task = MembershipTask(_LabelsOnly(target), x_in, y_in, x_out, y_out)
    from aisec.attacks.inference.base import require_for

    for name in ("gap", "label_only"):
        info = get_inference_attack(name)
        require_for(task, info)
        m = _auc(info.cls().run(task, info.cls.Params()), task)
        assert m.auc > 0.5
    with pytest.raises(CapabilityError, match="gap"):
        require_for(task, get_inference_attack("loss"))


def test_recipe_attacks_explain_what_is_missing(memorising):
    target, (x_in, y_in), (x_out, y_out) = memorising
    task = MembershipTask(target, x_in, y_in, x_out, y_out)
    for name in ("lira", "rmia", "shadow"):
        info = get_inference_attack(name)
        with pytest.raises(ConfigError, match="recipe"):
            info.cls().run(task, info.cls.Params())
