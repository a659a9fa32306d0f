"""The poisoning check: ASR rises with the poisoning rate; evidence is finite; bad input fails early."""

from __future__ import annotations

import math

import pytest
import torch

from aisec.checks.poisoning import (
    PoisoningCheck,
    PoisoningParams,
    RecipeDivergedError,
    resilience_score,
    resolve_recipe,
)
from aisec.core.errors import ConfigError, DataError
from aisec.core.registry import get_check
from aisec.data.builtin import digits
from aisec.models.recipe import TrainingRecipe

FAST = TrainingRecipe(architecture="digits-cnn", epochs=6, lr=3e-3)


def test_registered() -> None:
    assert get_check("poisoning").cls is PoisoningCheck


def test_badnets_sweep(digits_target) -> None:
    params = PoisoningParams(rates=[0.01, 0.1], source_class=None, trigger_sizes=[3], recipe=FAST, examples=3)
    before = {k: v.clone() for k, v in digits_target.module.state_dict().items()}
    r = PoisoningCheck().run(digits_target, digits(), params)
    asr = [p["asr"] for p in r.summary["points"]]
    assert asr[0] < 0.2 and asr[-1] > 0.8 and asr[-1] > asr[0]
    assert all(p["clean_accuracy"] > 0.85 for p in r.summary["points"])
    for m in r.measurements:
        assert math.isfinite(m.value)
        if m.interval is not None:
            assert m.interval.contains(m.value)
    assert 0.0 <= r.measurement("poisoning.resilience").value <= 1.0
    assert r.measurement("poisoning.min_poison_rate").value == 0.1
    assert r.summary["pixels_needed"] == 9
    assert r.images["poisons"]["poisoned"].shape == (3, 1, 8, 8)
    after = digits_target.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the user's model is untouched


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"source_class": 1, "target_class": 1}, "both 1"),
        ({"target_class": 10}, "does not exist"),
        ({"trigger": {"kind": "patch", "size": 9}}, "larger than the 8x8"),
        ({"attack": "sleeper-agent", "source_class": None}, "needs a source_class"),
    ],
)
def test_bad_input(digits_target, kwargs, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        PoisoningCheck().run(digits_target, digits(), PoisoningParams(**kwargs))


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"source_class": 3}, "source_class=3 is a class of the model but dataset"),
        ({"attack": "hidden-trigger", "target_class": 1, "source_class": 0}, "target_class=1 is a class"),
    ],
)
def test_class_absent_from_the_data(digits_target, kwargs, msg) -> None:
    d = digits()
    keep = [i for i in range(len(d)) if int(d.y[i]) not in (1, 3)][:400]
    with pytest.raises(DataError, match=msg):
        PoisoningCheck().run(digits_target, d.subset(keep, name="digits-without-1-3"), PoisoningParams(**kwargs))


@pytest.mark.parametrize("mode", ["retrain", "finetune"])
def test_diverging_recipe_writes_no_evidence(digits_target, tmp_path, mode) -> None:
    from aisec.api import assess

    bad = {"architecture": "target", "mode": mode, "epochs": 2, "lr": 1e12, "optimizer": "sgd"}
    with pytest.raises(RecipeDivergedError, match="diverged") as info:
        assess(digits_target, digits(), checks={"poisoning": {"rates": [0.02], "trigger_sizes": [], "samples": 300,
                                                             "recipe": bad}}, out=tmp_path)
    assert isinstance(info.value, ConfigError) and "lr=1e+12" in str(info.value)
    assert not [p.name for p in tmp_path.rglob("*") if p.name != "plan.yaml"]  # no evidence, result or report


def test_finetune_victims_start_from_the_target_and_leave_it_untouched(digits_target) -> None:
    import hashlib

    def digest() -> str:
        return hashlib.sha256(b"".join(v.numpy().tobytes() for v in digits_target.module.state_dict().values())
                              ).hexdigest()

    before = digest()
    params = PoisoningParams(rates=[0.1], source_class=None, trigger_sizes=[], samples=600, examples=0,
                             recipe={"architecture": "target", "mode": "finetune"})
    r = PoisoningCheck().run(digits_target, digits(), params)
    assert digest() == before
    assert r.summary["mode"] == "finetune" and r.params["recipe"]["mode"] == "finetune"
    rec = r.measurement("poisoning.resilience").parameters["recipe"]
    assert rec["epochs"] == 4 and rec["lr"] == 1e-3  # the fine-tuning defaults
    # starting from a trained model, even the rate-0 victim is accurate after 4 short epochs
    assert r.summary["points"][0]["clean_accuracy"] > 0.9


def test_recipe_mode_resolution(digits_target) -> None:
    assert resolve_recipe(digits_target, None, None, "badnets").mode == "retrain"
    assert resolve_recipe(digits_target, None, None, "hidden-trigger").mode == "finetune"
    fine = TrainingRecipe(architecture="digits-cnn", mode="finetune")
    assert resolve_recipe(digits_target, fine, None, "badnets").mode == "finetune"  # set explicitly: kept
    assert resolve_recipe(digits_target, FAST, None, "hidden-trigger").mode == "finetune"  # unset: per attack
    assert resolve_recipe(digits_target, fine, "retrain", "badnets").mode == "retrain"  # the check's mode wins
    own = resolve_recipe(digits_target, TrainingRecipe(architecture="target", epochs=2), None, "badnets")
    assert own.architecture == "copy-of:digits-cnn" and own.epochs == 2 and own.lr == 3e-3


def test_resilience_score() -> None:
    assert resilience_score([0.0, 0.0, 0.0], [0.0, 0.01, 0.1]) == 1.0
    assert resilience_score([0.0, 1.0, 1.0], [0.0, 0.01, 0.1]) == 0.0
    assert resilience_score([0.2, 0.6, 1.0], [0.0, 0.01, 0.1]) == pytest.approx(1 - (0.5 + 1.0) / 2)


@pytest.mark.slow
def test_clean_label_sleeper_agent_poisons_in_eps_ball(digits_target) -> None:
    from aisec.attacks.poisoning.sleeper_agent import SleeperAgentParams

    params = PoisoningParams(attack="sleeper-agent", rates=[0.03], recipe=FAST, trigger_sizes=[],
                             sleeper_agent=SleeperAgentParams(steps=40))
    r = PoisoningCheck().run(digits_target, digits(), params)
    assert r.summary["poison_linf"] <= 16 / 255 + 1e-6
    assert all(math.isfinite(m.value) for m in r.measurements)
