"""Threat-model files: a valid one parses; each incoherent or mistyped one is refused with one clear line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from aisec.core.errors import ConfigError
from aisec.threats.model import ThreatModel

ROOT = Path(__file__).resolve().parents[3]

BASE: dict[str, Any] = {
    "name": "t",
    "system": {"modality": "image", "access": "scores", "deployment": "cloud-api"},
    "attacker": {"goals": ["evasion-untargeted"], "knowledge": "black",
                 "capabilities": {"perturbation": {"domain": "linf", "budget": 0.1}, "query_budget": 100}},
    "model": "digits-cnn", "data": "digits",
}


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    *head, last = path.split(".")
    d = raw
    for k in head:
        d = d[k]
    if value is None:
        del d[last]
    else:
        d[last] = value
    return raw


def test_the_documented_example_parses() -> None:
    tm = ThreatModel.from_yaml(ROOT / "docs" / "examples" / "threat-model.yaml")
    assert tm.system.access == "scores" and tm.attacker.capabilities.query_budget == 1000
    assert tm.model is not None and tm.model.path == "digits-cnn"
    assert tm.training_data is not None and tm.training_data.options == {"split": "train"}
    assert ThreatModel.parse(tm.model_dump(mode="json")) == tm  # round trip


@pytest.mark.parametrize(("path", "value", "message"), [
    ("system.acess", "scores", "system.acess: Extra inputs are not permitted"),
    ("system.access", "api", "system.access: Input should be 'weights', 'scores', 'labels' or 'none'"),
    ("system.access", "weights", "access weights hands the attacker the weights, so attacker.knowledge is white"),
    ("system.rate_limit", 0, "system.rate_limit: Input should be greater than 0"),
    ("attacker.goals", [], "attacker.goals: List should have at least 1 item"),
    ("attacker.goals", ["evasion-untargeted", "evasion-untargeted"], "goals are listed twice"),
    ("attacker.goals", ["stealing"], "attacker.goals.0: Input should be"),
    ("attacker.capabilities.perturbation", None, "evasion goals need attacker.capabilities.perturbation"),
    ("attacker.capabilities.perturbation", {"domain": "word-swaps", "budget": 2},
     "perturbation domain word-swaps does not apply to image inputs"),
    ("attacker.capabilities.perturbation", {"domain": "linf", "budget": 0}, "budget: Input should be greater than 0"),
    ("attacker.capabilities.query_budget", None, "black-box attacker with scores access evades by querying"),
    ("attacker.capabilities.training_data_share", 1.5, "training_data_share: Input should be less than or equal to 1"),
    ("attacker.goals", ["poisoning"], "the poisoning goal needs attacker.capabilities.training_data_share"),
    ("out_of_scope", [{"threat": "AML.T0999", "why": "x"}], "out_of_scope names unknown threat AML.T0999"),
    ("out_of_scope", [{"threat": "AML.T0041", "why": ""}], "out_of_scope.0.why: String should have at least 1"),
    ("system.rate_limit", 5, None),
])
def test_invalid_files_are_refused_with_one_line(path: str, value: Any, message: str | None) -> None:
    raw = _with(path, value)
    if message is None:  # rate_limit 5 on a cloud-api: valid
        assert ThreatModel.parse(raw).system.rate_limit == 5
        return
    with pytest.raises(ConfigError) as err:
        ThreatModel.parse(raw, source="tm.yaml")
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("invalid threat model tm.yaml: ")


def test_rate_limit_needs_a_cloud_api() -> None:
    raw = _with("system.rate_limit", 10)
    raw["system"]["deployment"] = "on-device"
    with pytest.raises(ConfigError, match="rate_limit applies to a cloud-api deployment, not on-device"):
        ThreatModel.parse(raw)


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threat-model file not found"):
        ThreatModel.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a mapping with system and attacker"):
        ThreatModel.from_yaml(bad)


def test_word_swaps_count_whole_words() -> None:
    raw = _with("system.modality", "text")
    raw["attacker"]["capabilities"]["perturbation"] = {"domain": "word-swaps", "budget": 1.5}
    with pytest.raises(ConfigError, match=r"a word-swaps budget counts whole words, got 1\.5"):
        ThreatModel.parse(raw)
