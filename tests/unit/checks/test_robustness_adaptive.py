"""Adaptive attacks named in a plan (``bpda:``, ``eot:``, ``--bpda``/``--eot``) and the ``autoattack``
ensemble's per-sample ``broken_by`` in the robustness check.

BPDA setting (as tests/reference/test_bpda_reference.py, with 1 bit so that ``h`` changes some clean
predictions: the digits are already on a 17-level grid, which 3 bits keep): the digits CNN ``g``
behind 1-bit depth reduction ``h`` is the deployed system ``f = g(h(x))``. ``h`` rounds, so
``df/dx = 0``: plain PGD on ``f`` finds little. A plan that gives ``g`` as the model and
``bpda: bit-depth:1`` attacks ``f`` through ``h`` straight-through, and must score that curve on ``f``
(its clean predictions, its adversarial predictions), never on ``g``.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from aisec.attacks.adaptive import preprocessing
from aisec.attacks.base import run_attack
from aisec.checks._attack_spec import AttackSpec
from aisec.checks.robustness import RobustnessCheck, RobustnessParams
from aisec.core.check import ConsoleTable
from aisec.core.checkpoint import steps_in
from aisec.core.dataset import take
from aisec.targets.torch import TorchTarget

BITS, EPS, N = 1, 0.1, 64
OFF = {"clever": {"enabled": False}, "examples": 8}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(digits_split):
    _, test = digits_split
    return test.subset(range(N), name=f"digits-test-{N}")


class Squeezed(nn.Module):
    """The defended model: bit-depth reduction (non-differentiable), then the classifier."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m, self.h = m, preprocessing(f"bit-depth:{BITS}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.m(self.h(z, (0.0, 1.0)))


class Shaky(nn.Module):
    """A randomised model whose gradients mislead: ``logits + s * c * sin(w * x.V)`` with a fresh ``s ~ N(0, 1)``
    per sample and forward. The values move by at most ``c`` (predictions barely change), the gradients by
    ``c * w * |V|`` in a random direction, which averaging draws (EOT) cancels."""

    def __init__(self, m: nn.Module, c: float = 0.05, w: float = 300.0) -> None:
        super().__init__()
        self.m, self.c, self.w = m, c, w
        self.register_buffer("v", torch.randn(64, 10, generator=torch.Generator().manual_seed(0)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = torch.randn(z.shape[0], 1)
        return self.m(z) + s * self.c * torch.sin(self.w * z.reshape(z.shape[0], -1) @ self.v)


def _curve(result, key):
    return next(c for c in result.summary["curves"] if c["key"] == key)


def _lines(result):
    out = []
    for ln in result.summary.console_lines(result, model="m", dataset="d"):
        if isinstance(ln, ConsoleTable):
            out += [" | ".join(row) for row in ln.rows]
            out.append(ln.title)
        else:
            out.append(ln)
    return out


def test_bpda_in_a_plan_breaks_the_quantiser_and_is_scored_on_the_defended_model(digits_model, digits_target, data):
    defended = TorchTarget(Squeezed(digits_model), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    base = {"eps": [EPS], "reference_eps": {}, "samples": N, "reliability": {"enabled": False}, **OFF}
    plain = RobustnessCheck().run(defended, data, RobustnessParams(attacks=["pgd"], **base))
    params = RobustnessParams(attacks=[{"name": "pgd", "bpda": f"bit-depth:{BITS}"}, "fgsm"], **{
        **base, "reliability": {"enabled": True, "escalate": False}})
    res = RobustnessCheck().run(digits_target, data, params)
    key = f"pgd-linf+bpda-bit-depth-{BITS}"
    curve, plain_curve = _curve(res, key), _curve(plain, "pgd-linf")
    r_bpda, r_plain = curve["points"][0]["robust_accuracy"], plain_curve["points"][0]["robust_accuracy"]
    # measured: plain 0.81, BPDA 0.56 (at 3 bits: 0.92 and 0.28)
    assert r_bpda <= r_plain - 0.15, (r_bpda, r_plain)
    # scored on the defended model: its clean predictions and clean accuracy, not the classifier's
    table = res.tables["samples"]
    np.testing.assert_array_equal(table[f"{key}:pred_clean"], plain.tables["samples"]["pred_clean"])
    assert curve["clean_accuracy"] == pytest.approx(plain.summary["clean_accuracy"])  # measured 0.875
    assert curve["clean_accuracy"] < res.summary["clean_accuracy"] - 0.05  # the classifier alone: 0.953
    fooled = table[f"{key}@{EPS:g}:fooled"].astype(bool)
    assert not (fooled & (table[f"{key}:pred_clean"] != table["label"])).any()
    assert np.mean((table[f"{key}:pred_clean"] == table["label"]) & ~fooled) == pytest.approx(r_bpda)
    ex = res.images[key]  # the adversarials themselves: the defended model's predictions on them
    with torch.no_grad():
        np.testing.assert_array_equal(defended.predict(torch.from_numpy(ex["adv"])).argmax(1).numpy(), ex["pred_adv"])
    assert float(np.abs(ex["adv"] - ex["clean"]).max()) <= EPS + 1e-6
    # the evidence and the console say which wrapper ran; the worst case is over the model as given only
    m = next(m for m in res.measurements if m.metric == "robustness.robust_accuracy" and m.parameters.get("bpda"))
    assert m.parameters["wrapper"] == f"BPDA through bit-depth:{BITS}"
    assert m.parameters["clean_accuracy_of_system"] == pytest.approx(curve["clean_accuracy"])
    assert any(f"pgd (BPDA through bit-depth:{BITS})" in ln for ln in _lines(res))
    assert res.summary["worst_case"][0]["attacks"] == ["fgsm-linf"]
    assert "clean_accuracy" not in _curve(res, "fgsm-linf") and "wrapper" not in _curve(res, "fgsm-linf")


def test_a_bad_bpda_or_eot_is_one_clear_error():
    with pytest.raises(ValidationError, match="known: bit-depth, jpeg-like, threshold"):
        AttackSpec(name="pgd", bpda="nosuch")
    with pytest.raises(ValidationError, match="needs an integer argument"):
        AttackSpec(name="pgd", bpda="bit-depth:x")
    with pytest.raises(ValidationError, match="eot"):
        AttackSpec(name="pgd", eot=0)
    assert AttackSpec(name="pgd", bpda=" threshold:0.5 ").bpda == "threshold:0.5"


def test_bpda_on_a_black_box_target_fails_before_any_attack(data):
    from sklearn.linear_model import LogisticRegression

    from aisec.core.errors import ConfigError
    from aisec.targets.sklearn import ProbaTarget

    x, y = take(data, N)
    clf = LogisticRegression(max_iter=200).fit(x.reshape(N, -1).numpy(), y.numpy())
    target = ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ConfigError, match="BPDA needs a white-box classifier"):
        RobustnessCheck().run(target, data, RobustnessParams(attacks=[{"name": "square", "bpda": "bit-depth:3"}],
                                                             eps=[EPS], samples=8, **OFF))


def test_eot_in_a_plan_averages_draws_on_a_randomised_model(digits_model, data):
    noisy = TorchTarget(Shaky(digits_model), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    params = RobustnessParams(attacks=[{"name": "pgd"}, {"name": "pgd", "eot": 8}],
                              eps=[EPS], reference_eps={}, samples=N, **OFF)
    res = RobustnessCheck().run(noisy, data, params)
    plain, eot = _curve(res, "pgd-linf"), _curve(res, "pgd-linf+eot8")
    assert eot["wrapper"] == "EOT over 8 draws"
    # every gradient step costs 8 forwards (PGD drops a sample once fooled, so not exactly 8x; measured 7.2x)
    assert eot["queries"] >= 6 * plain["queries"], (eot["queries"], plain["queries"])
    # measured on 3 seeds outside the check: plain 0.77-0.81, EOT 0.59-0.66 robust accuracy
    assert eot["points"][0]["robust_accuracy"] <= plain["points"][0]["robust_accuracy"] - 0.08
    m = next(m for m in res.measurements if m.metric == "robustness.robust_accuracy" and m.parameters.get("eot"))
    assert m.parameters["eot"] == 8 and m.parameters["wrapper"] == "EOT over 8 draws"
    # the randomness flag fired; its remedy (PGD through EOT) is the run the plan asked for
    rel = res.summary["reliability"]
    assert "randomized" in [f["id"] for f in rel["flags"]]
    esc = next(e for e in rel["escalations"] if e["flag"] == "randomized")
    assert (esc["status"], esc["note"]) == ("skipped", "already ran")
    assert "eot8" in [k.rsplit("+", 1)[-1] for k in res.summary["worst_case"][0]["attacks"]]


def test_bpda_and_eot_flags_apply_to_the_attacks_given():
    f = {fl.dest: None for fl in RobustnessCheck.flags}
    f.update(attacks=["pgd", "cw"], bpda="bit-depth:4", eot=5, targeted=False, quantize=False)
    r = RobustnessCheck.from_flags({}, f, {})
    params = RobustnessParams(**r)
    assert [(a.name, a.bpda, a.eot) for a in params.attacks] == [("pgd", "bit-depth:4", 5), ("cw", "bit-depth:4", 5)]
    assert params.attacks[0].wrapper_label() == "BPDA through bit-depth:4, EOT over 5 draws"
    assert params.attacks[0].key_suffix() == "+bpda-bit-depth-4+eot5"


def test_autoattack_records_the_stage_that_broke_each_sample(digits_target, data, tmp_path):
    from aisec.api import _write_table

    grid = [0.05, 0.1]
    aa = {"version": "quick", "steps": 10}
    params = RobustnessParams(attacks=[{"name": "autoattack", "params": aa}], eps=grid, reference_eps={}, samples=40,
                              reliability={"enabled": False}, **OFF)
    with steps_in(tmp_path / "steps"):
        res = RobustnessCheck().run(digits_target, data, params)
        kept = RobustnessCheck().run(digits_target, data, params)  # a resumed run reads the kept step back
    table = res.tables["samples"]
    correct = table["pred_clean"] == table["label"]
    curve = _curve(res, "autoattack-linf")
    assert _curve(kept, "autoattack-linf")["points"] == curve["points"]
    step = json.loads(next((tmp_path / "steps").glob("*autoattack-linf.json")).read_text(encoding="utf-8"))
    assert step["doc"]["tag_order"] == ["clean", "apgd-ce", "apgd-t"] and len(step["doc"]["tags"]) == len(grid)
    for eps in grid:
        np.testing.assert_array_equal(kept.tables["samples"][f"autoattack-linf@{eps:g}:broken_by"],
                                      table[f"autoattack-linf@{eps:g}:broken_by"])
    x, y = take(data, 40)
    direct = run_attack("autoattack", digits_target, x, y, {"eps": grid[0], **aa}, seed=0)
    for j, p in enumerate(curve["points"]):
        broken = table[f"autoattack-linf@{p['eps']:g}:broken_by"]
        fooled = table[f"autoattack-linf@{p['eps']:g}:fooled"].astype(bool)
        assert set(broken) <= {"", "clean", "apgd-ce", "apgd-t"}
        np.testing.assert_array_equal(broken == "clean", ~correct)
        np.testing.assert_array_equal(np.isin(broken, ["apgd-ce", "apgd-t"]), fooled)
        stages = p["stage_robust"]
        assert list(stages) == ["apgd-ce", "apgd-t"]
        assert stages["apgd-ce"] == int(correct.sum()) - int((broken == "apgd-ce").sum())
        assert stages["apgd-ce"] >= stages["apgd-t"] == round(p["robust_accuracy"] * 40)
        if j == 0:  # the same run outside the check names the same stages
            want = np.array([t or "" for t in direct.tags], dtype=object)
            np.testing.assert_array_equal(np.where(correct, want, "clean"), broken)
    # a sample broken at 0.05 keeps that stage at 0.1 (worst case over the grid)
    b1, b2 = table["autoattack-linf@0.05:broken_by"], table["autoattack-linf@0.1:broken_by"]
    assert ((b1 == b2) | (b1 == "")).all() and (b2 != "").sum() > (b1 != "").sum()
    m = next(m for m in res.measurements if m.metric == "robustness.robust_accuracy")
    assert m.parameters["stage_robust"] == curve["points"][0]["stage_robust"]
    assert "ensemble stages (samples still robust after each)" in _lines(res)
    path = tmp_path / "robustness-samples.csv"
    _write_table(table, path)
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["autoattack-linf@0.1:broken_by"] for r in rows] == list(b2)
