"""The one registry: families, facts declared at registration, lookups, plugins and ``aisec plugins``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from aisec.core import registry
from aisec.core.errors import ConfigError
from aisec.core.types import Capability, Modality, Norm

BUILTINS = {
    "evasion": {"fgsm", "pgd", "bim", "cw", "deepfool", "jsma", "square", "simba", "boundary", "hopskipjump"},
    "text": {"hotflip", "embedding_pgd"},
    "inference": {"loss", "confidence", "gap", "label_only", "shadow", "lira", "rmia"},
    "poisoning": {"badnets", "blended", "hidden-trigger", "sleeper-agent", "badnl", "clean-label-badnl"},
    "detector": {"activation-clustering", "spectral-signatures", "neural-cleanse"},
    "explainer": {"lime", "kernel_shap", "saliency", "integrated_gradients", "random"},
    "check": {"robustness", "privacy", "poisoning", "backdoor", "explainability", "extraction"},
    "section": {"robustness", "privacy", "poisoning", "backdoor", "explainability"},
}


@pytest.fixture
def scratch() -> Iterator[list[tuple[str, str]]]:
    """Names a test registers, removed afterwards so other tests see the built-ins only."""
    added: list[tuple[str, str]] = []
    yield added
    for fam, name in added:
        registry.unregister(fam, name)


def test_every_family_exists_and_has_its_builtins() -> None:
    registry.load()
    assert set(registry.families()) >= set(BUILTINS) | {"defence"}
    for fam, expected in BUILTINS.items():
        assert expected <= set(registry.names(fam)), fam
    assert isinstance(registry.methods("defence"), list)  # the family exists, ready for @register("defence", ...)


def test_facts_the_code_relies_on() -> None:
    assert registry.get("evasion", "cw").natural_norm is Norm.L2
    assert registry.get("evasion", "deepfool").natural_norm is Norm.L2
    assert registry.get("evasion", "jsma").natural_norm is Norm.L0
    assert registry.get("evasion", "pgd").natural_norm is Norm.LINF  # undeclared: linf when supported
    hotflip = registry.get("text", "hotflip")
    assert hotflip.budget_unit == "words" and hotflip.integer_budget and hotflip.nested_budgets
    assert hotflip.default_eps == (1.0, 2.0, 3.0) and hotflip.real_text
    assert not registry.get("text", "embedding_pgd").real_text
    assert registry.get("explainer", "lime").stochastic and registry.get("explainer", "lime").perturbation
    assert not registry.get("explainer", "saliency").stochastic
    assert registry.names("explainer", perturbation=True) == ["kernel_shap", "lime"]
    assert registry.names("explainer", stochastic=True) == ["kernel_shap", "lime", "random"]
    assert Modality.TEXT in registry.get("explainer", "lime").modalities
    assert registry.get("evasion", "pgd").iterative and not registry.get("evasion", "fgsm").iterative
    assert registry.get("inference", "lira").needs_recipe and registry.get("inference", "gap").labels_only
    assert registry.get("poisoning", "hidden-trigger").default_mode == "finetune"
    assert registry.get("poisoning", "sleeper-agent").clean_label
    assert not registry.get("poisoning", "badnets").clean_label
    assert registry.get("poisoning", "blended").trigger == "blend"
    assert registry.names("detector", flags_samples=True) == ["activation-clustering", "spectral-signatures"]
    assert registry.get("detector", "neural-cleanse").inspects == "model"


@pytest.mark.parametrize("family", ["evasion", "text"])
def test_iterative_means_takes_steps(family: str) -> None:
    for info in registry.methods(family):
        assert info.params is not None
        assert info.iterative == ("steps" in info.params.model_fields), info.name  # type: ignore[attr-defined]


def test_natural_norm_drives_the_attack_spec() -> None:
    from aisec.checks._attack_spec import AttackSpec

    assert AttackSpec(name="cw").resolved_norm() is Norm.L2
    assert AttackSpec(name="jsma").resolved_norm() is Norm.L0
    assert AttackSpec(name="fgsm").resolved_norm() is Norm.LINF
    assert AttackSpec(name="cw", norm=Norm.LINF).resolved_norm() is Norm.LINF


def test_steps_flag_goes_to_iterative_attacks_only() -> None:
    from aisec.checks.robustness import RobustnessCheck

    flags: dict[str, Any] = {k: None for k in ("attacks", "norm", "targeted", "eps", "eps_l2", "count", "batch_size",
                                               "quantize", "clever_samples", "clever_norms", "steps")}
    flags |= {"attacks": ["fgsm", "pgd", "cw", "square"], "steps": 7}
    r = RobustnessCheck.from_flags({}, flags, {})
    got = {a["name"]: a.get("params", {}).get("steps") for a in r["attacks"]}
    assert got == {"fgsm": None, "pgd": 7, "cw": 7, "square": None}


def test_lookups_normalise_names_and_aliases() -> None:
    assert registry.get("explainer", "IG").name == "integrated_gradients"
    assert registry.get("explainer", "shap").name == "kernel_shap"
    assert registry.get("inference", "label-only").name == "label_only"
    assert registry.get("detector", "neural_cleanse").name == "neural-cleanse"
    with pytest.raises(ConfigError, match=r"unknown explainer 'nope'; known: .*lime"):
        registry.get("explainer", "nope")
    with pytest.raises(ConfigError, match="unknown method family 'attacks'; known: evasion"):
        registry.get("attacks", "pgd")
    with pytest.raises(ConfigError, match="no facts"):
        registry.names("evasion", magic=True)


def test_the_older_api_is_a_view_of_the_registry() -> None:
    registry.load_plugins()
    assert registry.get_attack("hotflip") is registry.get("text", "hotflip")
    assert registry.ATTACKS["pgd"] is registry.get("evasion", "pgd")
    assert set(registry.ATTACKS) == set(registry.names("evasion")) | set(registry.names("text"))
    assert registry.get_check("robustness") is registry.CHECKS["robustness"]
    from aisec.attacks.inference.base import INFERENCE_ATTACKS, get_inference_attack

    assert set(INFERENCE_ATTACKS) == set(registry.names("inference"))
    assert get_inference_attack("LiRA") is registry.get("inference", "lira")


def test_a_duplicate_name_is_an_error(scratch: list[tuple[str, str]]) -> None:
    class FakePGD:
        """Not PGD."""

    with pytest.raises(ConfigError, match="'pgd' is registered twice"):
        registry.register("evasion", "pgd", norms={Norm.LINF}, targeted=False, kind=registry.AttackKind.FIXED_EPS)(
            FakePGD)
    # evasion and text attacks share one namespace: get_attack finds either
    with pytest.raises(ConfigError, match="'hotflip' is registered twice"):
        registry.register_attack("hotflip", requires=set(), norms={Norm.L0}, targeted=False,
                                 kind=registry.AttackKind.FIXED_EPS)(FakePGD)
    with pytest.raises(ConfigError, match="'lime' is registered twice"):
        registry.register("explainer", "lime")(lambda *a, **k: None)
    assert registry.get("evasion", "pgd").obj is not FakePGD


def test_unknown_or_missing_facts_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown facts \['wobbly'\]"):
        registry.register("explainer", "wobbly-explainer", wobbly=True)(lambda: None)
    with pytest.raises(ConfigError, match="natural_norm"):
        registry.register("evasion", "odd", norms={Norm.LINF}, targeted=False, kind=registry.AttackKind.FIXED_EPS,
                          natural_norm=Norm.L2)(type("Odd", (), {}))
    with pytest.raises(ConfigError, match="clean_label"):
        registry.register("poisoning", "half-declared")(type("Half", (), {}))
    assert "wobbly-explainer" not in registry.names("explainer")


class _EntryPoint:
    def __init__(self, name: str, load: Any) -> None:
        self.name = name
        self._load = load

    def load(self) -> Any:
        return self._load()


class _EntryPoints:
    def __init__(self, *eps: _EntryPoint) -> None:
        self._eps = eps

    def select(self, group: str) -> tuple[_EntryPoint, ...]:
        return self._eps if group == "aisec.plugins" else ()


def _third_party_plugin() -> None:
    """What a third-party module's import does: its decorators register methods in any family."""
    from pydantic import BaseModel

    @registry.register("defence", "jpeg-squeeze", modalities={Modality.IMAGE}, paper="https://arxiv.org/abs/1704.01155")
    class JpegSqueeze:
        """Re-encode inputs as JPEG before the model sees them."""

        class Params(BaseModel):
            quality: int = 75

    @registry.register("detector", "third-party-detector", inspects="features", flags_samples=True,
                       requires={Capability.GRADIENTS})
    def third_party_detector(features: Any, labels: Any, num_classes: int, *, threshold: float = 2.5) -> None:
        """A detector from another package."""


def _broken_plugin() -> None:
    raise ImportError("No module named 'missing_dependency'")


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch, scratch: list[tuple[str, str]]) -> None:
    registry.load()  # built-ins first, so the fake entry points are the only thing loaded below
    monkeypatch.setattr(registry, "entry_points", lambda: _EntryPoints(
        _EntryPoint("good-plugin", _third_party_plugin), _EntryPoint("broken-plugin", _broken_plugin)))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "PLUGIN_ERRORS", {})
    scratch += [("defence", "jpeg-squeeze"), ("detector", "third-party-detector")]
    registry.load()


@pytest.mark.usefixtures("fake_plugins")
def test_plugins_register_in_any_family_and_failures_are_kept() -> None:
    assert registry.PLUGIN_ERRORS == {"broken-plugin": "ImportError: No module named 'missing_dependency'"}
    jpeg = registry.get("defence", "jpeg-squeeze")
    assert jpeg.summary == "Re-encode inputs as JPEG before the model sees them." and jpeg.parameters() == {
        "quality": "75"}
    assert "third-party-detector" in registry.names("detector", flags_samples=True)
    assert registry.get("detector", "third-party-detector").parameters() == {"threshold": "2.5"}


@pytest.mark.usefixtures("fake_plugins")
def test_aisec_plugins_lists_third_party_methods_and_errors() -> None:
    from aisec.cli.main import main

    res = CliRunner().invoke(main, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["defence"]["jpeg-squeeze"]["params"] == {"quality": "75"}
    assert data["defence"]["jpeg-squeeze"]["modalities"] == ["image"]
    det = data["detector"]["third-party-detector"]
    assert det["requires"] == ["gradients"] and det["flags_samples"] and det["inspects"] == "features"
    assert data["errors"] == {"broken-plugin": "ImportError: No module named 'missing_dependency'"}
    res = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["plugins"])
    assert res.exit_code == 0, res.output
    assert "jpeg-squeeze" in res.output and "broken-plugin" in res.output and "missing_dependency" in res.output


def test_aisec_plugins_json_has_every_family_with_facts_and_params() -> None:
    from aisec.cli.main import main

    res = CliRunner().invoke(main, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for fam, expected in BUILTINS.items():
        assert expected <= set(data[fam]), fam
    assert {"attacks", "inference_attacks", "checks", "models", "errors"} <= set(data)
    assert data["evasion"]["cw"]["natural_norm"] == "l2" and data["evasion"]["pgd"]["iterative"]
    assert data["evasion"]["pgd"]["params"]["steps"] == "10"
    assert data["text"]["hotflip"]["budget_unit"] == "words"
    assert data["explainer"]["lime"]["stochastic"] and data["explainer"]["integrated_gradients"]["aliases"] == ["ig"]
    assert data["poisoning"]["hidden-trigger"]["params"]["eps"] is not None
    assert {a["name"] for a in data["attacks"]} == set(data["evasion"]) | set(data["text"])


def test_aisec_plugins_fits_80_columns() -> None:
    from aisec.cli.main import main

    res = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["plugins"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    for title in ("evasion attacks", "text attacks", "membership-inference attacks", "poisoning attacks",
                  "backdoor detectors", "explainers", "defences", "checks", "report sections"):
        assert title in res.output
    assert "steps=10" in res.output  # parameters are shown


def test_choice_flags_can_take_their_choices_from_a_family(scratch: list[tuple[str, str]]) -> None:
    from aisec.checks.explainability import ExplainabilityCheck
    from aisec.core.flags import Flag

    flag = next(f for f in ExplainabilityCheck.flags if f.name == "--explainer")
    assert set(flag.options()) == set(registry.names("explainer"))

    registry.register("explainer", "third-party-explainer", stochastic=True)(lambda *a, **k: None)
    scratch.append(("explainer", "third-party-explainer"))
    assert "third-party-explainer" in flag.options()
    with pytest.raises(ValueError, match="not both"):
        Flag("--x", "x", kind="choice", choices=("a",), choices_from="explainer")
    with pytest.raises(ValueError, match="go with kind 'choice'"):
        Flag("--x", "x", kind="text", choices_from="explainer")
