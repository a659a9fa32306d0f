"""Plans from threat models: per access level and knowledge the attacks, budgets and checks the threat model
implies, a reason for each, and entries every check accepts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from aisec.core import registry
from aisec.core.errors import ConfigError
from aisec.core.plan import Plan
from aisec.threats.model import ThreatModel
from aisec.threats.planner import plan_for, plan_yaml


def _tm(access: str, knowledge: str, *, goals: tuple[str, ...] = ("evasion-untargeted",), domain: str = "linf",
        budget: float = 0.1, **extra: Any) -> ThreatModel:
    caps: dict[str, Any] = {"perturbation": {"domain": domain, "budget": budget}, "query_budget": 1000}
    caps.update(extra.pop("caps", {}))
    raw: dict[str, Any] = {
        "name": f"{knowledge}-{access}",
        "system": {"modality": extra.pop("modality", "image"), "access": access, "deployment": "cloud-api"},
        "attacker": {"goals": list(goals), "knowledge": knowledge, "capabilities": caps},
        "model": "digits-cnn", "data": {"source": "digits", "options": {"split": "test"}},
        "training_data": {"source": "digits", "options": {"split": "train"}},
        **extra,
    }
    return ThreatModel.parse(raw)


def _attacks(plan: Plan) -> list[tuple[str, bool]]:
    return [(a["name"], a.get("targeted", False)) for a in plan.checks["robustness"]["attacks"]]


def _valid(plan: Plan) -> None:
    """Every entry validates against its check's own Params (the property every plan must have)."""
    registry.load_plugins()
    for name, entry in plan.checks.items():
        registry.get_check(name).cls.Params.model_validate(copy.deepcopy(entry))
    Plan.model_validate(plan.model_dump(mode="json"))


def test_white_box_gets_gradient_attacks_and_clever() -> None:
    plan = plan_for(_tm("weights", "white"))
    assert _attacks(plan) == [("fgsm", False), ("pgd", False)]
    rob = plan.checks["robustness"]
    assert rob["eps"] == [0.025, 0.05, 0.1] and rob["reference_eps"] == {"linf": 0.1}
    assert "clever" not in rob  # gradients are the attacker's: CLEVER stays on
    assert any("the weights are exposed" in r.because for r in plan.rationale)
    _valid(plan)


def test_black_box_scores_get_square_and_hopskipjump_with_the_query_budget() -> None:
    plan = plan_for(_tm("scores", "black"))
    rob = plan.checks["robustness"]
    assert _attacks(plan) == [("square", False), ("hopskipjump", False)]
    assert all(a["params"] == {"max_queries": 1000} for a in rob["attacks"])
    assert rob["clever"] == {"enabled": False}
    first = plan.rationale[0]
    assert first.choice == "square + hopskipjump, 1,000 queries per input"
    assert "black-box scores access; query budget 1,000 from the threat model" in first.because
    _valid(plan)


def test_labels_only_gets_hopskipjump() -> None:
    plan = plan_for(_tm("labels", "black", domain="l2", budget=1.0))
    rob = plan.checks["robustness"]
    assert _attacks(plan) == [("hopskipjump", False)]
    assert rob["attacks"][0]["norm"] == "l2" and rob["eps_l2"] == [0.25, 0.5, 1.0] and "eps" not in rob
    assert "labels only" in plan.rationale[0].because
    _valid(plan)


def test_grey_box_adds_a_transfer_attack() -> None:
    plan = plan_for(_tm("scores", "grey"))
    assert _attacks(plan) == [("square", False), ("hopskipjump", False), ("transfer", False)]
    assert any(r.choice == "transfer" and "grey-box" in r.because for r in plan.rationale)
    _valid(plan)


def test_no_query_access_leaves_only_transfer() -> None:
    plan = plan_for(_tm("none", "black", caps={"query_budget": None}))
    assert _attacks(plan) == [("transfer", False)]
    _valid(plan)


def test_targeted_goal_runs_targeted_attacks() -> None:
    plan = plan_for(_tm("weights", "white", goals=("evasion-targeted",)))
    assert _attacks(plan) == [("fgsm", True), ("pgd", True)]
    both = plan_for(_tm("weights", "white", goals=("evasion-targeted", "evasion-untargeted")))
    assert _attacks(both) == [("fgsm", False), ("pgd", False), ("fgsm", True), ("pgd", True)]
    _valid(both)


def test_poisoning_share_bounds_the_rates() -> None:
    plan = plan_for(_tm("scores", "black", goals=("poisoning",), caps={"training_data_share": 0.05}))
    assert plan.checks == {"poisoning": {"attack": "badnets", "rates": [0.0, 0.00625, 0.0125, 0.025, 0.05]}}
    assert max(plan.checks["poisoning"]["rates"]) == 0.05
    assert "rates up to 0.05" in plan.rationale[0].because
    _valid(plan)


@pytest.mark.parametrize(("access", "attacks"), [("scores", ["loss", "confidence", "gap"]),
                                                 ("labels", ["gap", "label_only"])])
def test_membership_goal_runs_the_privacy_check_on_the_members(access: str, attacks: list[str]) -> None:
    plan = plan_for(_tm(access, "black", goals=("membership",)))
    entry = plan.checks["privacy"]
    assert entry["attacks"] == attacks
    assert entry["members"] == {"source": "digits", "options": {"split": "train"}}
    _valid(plan)


def test_membership_without_training_data_or_queries_is_not_tested() -> None:
    raw = _tm("scores", "black", goals=("membership", "evasion-untargeted")).model_dump(mode="json")
    raw.pop("training_data")
    plan = plan_for(ThreatModel.parse(raw))
    assert "privacy" not in plan.checks
    assert any(r.check == "privacy" and r.choice == "not tested" and "training_data" in r.because
               for r in plan.rationale)
    with pytest.raises(ConfigError, match="none of its goals"):
        plan_for(_tm("none", "black", goals=("membership",), caps={"query_budget": None}))


def test_extraction_uses_the_query_budget_and_soft_labels_only_with_scores() -> None:
    assert plan_for(_tm("scores", "black", goals=("extraction",))).checks["extraction"] == {
        "query_budget": 1000, "soft_labels": True}
    labels = plan_for(_tm("labels", "black", goals=("extraction",)))
    assert labels.checks["extraction"]["soft_labels"] is False
    _valid(labels)


def test_word_swaps_and_patches() -> None:
    text = plan_for(_tm("weights", "white", modality="text", domain="word-swaps", budget=2))
    assert text.checks["robustness"]["attacks"] == [{"name": "hotflip", "eps": [1.0, 2.0]}]
    registry.load_plugins()
    assert "hotflip" in registry.names("text")
    with pytest.raises(ConfigError, match="none of its goals"):
        plan_for(_tm("weights", "white", domain="patch", budget=4))


def test_defences_in_place_and_out_of_scope() -> None:
    raw = _tm("scores", "black").model_dump(mode="json")
    raw["system"]["defences"] = ["jpeg:quality=75", "training:pgd-at"]
    raw["out_of_scope"] = [{"threat": "AML.T0041", "why": "behind glass"}]
    tm = ThreatModel.parse(raw)
    plan = plan_for(tm)
    assert plan.model.defence == "jpeg:quality=75"
    assert any(r.choice == "training:pgd-at declared in place" for r in plan.rationale)
    assert any(r.threats == ["AML.T0041"] and "behind glass" in r.because for r in plan.rationale)
    raw["system"]["defences"] = ["jpeg:quality=500"]
    with pytest.raises(ConfigError, match=r"system\.defences jpeg:quality=500"):
        plan_for(ThreatModel.parse(raw))


def test_plan_yaml_explains_each_choice_and_reads_back() -> None:
    plan = plan_for(_tm("scores", "black"), samples=7)
    text = plan_yaml(plan)
    assert text.startswith("# aisec plan for the threat model 'black-scores'")
    assert "#   robustness: square + hopskipjump, 1,000 queries per input <- black-box scores access" in text
    import yaml

    back = Plan.model_validate(yaml.safe_load(text))
    assert back.checks["robustness"]["samples"] == 7
    assert back.rationale == plan.rationale and back.threat_model == plan.threat_model


def test_model_and_data_come_from_the_file_or_the_caller() -> None:
    raw = _tm("scores", "black").model_dump(mode="json")
    raw.pop("model")
    tm = ThreatModel.parse(raw)
    with pytest.raises(ConfigError, match="names no model under test"):
        plan_for(tm)
    assert plan_for(tm, model="lenet5-mnist").model.path == "lenet5-mnist"
