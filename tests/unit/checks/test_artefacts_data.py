"""Issue 18, item 8: the poisoned training set and the extraction surrogate on disk.

The poisoned set is checked against the data it came from (its clean rows are the data's own rows,
its poisons the trigger stamped on them, relabelled); generate-only mode trains nothing (training
is made to fail) and measures nothing. The surrogate file loads through the normal model loader
without ``--arch`` and reproduces the fidelity the check measured; ``aisec assess`` runs on it; a
file cannot name an architecture outside aisec's zoo.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aisec.api import assess
from aisec.attacks.poisoning.badnets import PatchTrigger
from aisec.core.errors import TargetError
from aisec.targets.loading import load_target


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _training_csv(out: Path) -> list[dict[str, str]]:
    with (out / "samples" / "poisoning-training.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_poisoned_set(z, data, *, rate: float, source: int, target: int) -> None:
    x, y, y_clean, mask, ids = z["x"], z["y"], z["y_clean"], z["poisoned"], z["train_index"]
    n = x.shape[0]
    assert int(mask.sum()) == round(rate * n) > 0 and float(z["rate"]) == rate
    np.testing.assert_array_equal(y_clean, data.y[torch.from_numpy(ids)].numpy())
    np.testing.assert_array_equal(x[~mask], data.x[torch.from_numpy(ids[~mask])].numpy())
    assert (y[mask] == target).all() and (y_clean[mask] == source).all()
    np.testing.assert_array_equal(y[~mask], y_clean[~mask])
    trigger = PatchTrigger(**json.loads(str(z["trigger"])))
    stamped = trigger.apply(data.x[torch.from_numpy(ids[mask])]).numpy()
    np.testing.assert_allclose(x[mask], stamped, atol=1e-6)


def test_generate_only_writes_the_poisoned_set_and_trains_nothing(digits_target, digits_split, tmp_path,
                                                                   monkeypatch):
    from aisec.checks.poisoning import PoisonedDataSummary
    from aisec.models.recipe import TrainingRecipe

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("generate_only trained a model")

    monkeypatch.setattr(TrainingRecipe, "train_many", refuse)
    data = digits_split[0].subset(range(200), name="digits-200")
    run = assess(digits_target, data, out=tmp_path, checks={"poisoning": {"generate_only": True, "rates": [0.05]}})
    r = run.results[0]
    assert r.measurements == [] and run.evidence == []
    s = r.summary
    assert isinstance(s, PoisonedDataSummary) and s.generate_only and s.file == "artefacts/poisoned-train.npz"
    z = np.load(tmp_path / "artefacts" / "poisoned-train.npz", allow_pickle=False)
    _check_poisoned_set(z, data, rate=0.05, source=0, target=1)
    assert s.poisons == int(z["poisoned"].sum()) and s.train_samples == z["x"].shape[0]
    assert [int(c["poisoned"]) for c in _training_csv(tmp_path)] == z["poisoned"].astype(int).tolist()
    assert "generate only" in r.summary.console_lines(r, model="m", dataset="d")[0]
    assert "generate only" in (tmp_path / "report.html").read_text(encoding="utf-8")
    listed = json.loads((tmp_path / "result.json").read_text())["artefacts"]
    assert [a["path"] for a in listed] == ["artefacts/poisoned-train.npz"]


def test_generate_only_needs_a_rate_that_poisons(digits_target, digits_split):
    from aisec.checks.poisoning import PoisoningCheck, PoisoningParams
    from aisec.core.errors import ConfigError

    data = digits_split[0].subset(range(100), name="digits-100")
    with pytest.raises(ConfigError, match="poisons no sample"):
        PoisoningCheck().run(digits_target, data, PoisoningParams(generate_only=True, rates=[0.0]))


def test_generate_only_flag_reaches_the_check():
    from aisec.checks.poisoning import PoisoningCheck

    flags = {"poison_rates": [0.1], "train_mode": None, "train_epochs": None, "train_lr": None, "generate_only": True}
    assert PoisoningCheck.from_flags({}, flags, {}) == {"rates": [0.1], "generate_only": True}
    assert "generate_only" not in PoisoningCheck.from_flags({}, {**flags, "generate_only": None}, {})


def test_a_poisoning_sweep_writes_the_set_its_largest_rate_trained_on(digits_target, digits_split):
    from aisec.checks.poisoning import PoisoningCheck, PoisoningParams

    data = digits_split[0].subset(range(200), name="digits-200")
    p = PoisoningParams(rates=[0.05], trigger_sizes=[], examples=0,
                        recipe={"architecture": "target", "epochs": 1})
    r = PoisoningCheck().run(digits_target, data, p)
    assert [a.path for a in r.artefacts] == ["poisoned-train.npz"] and r.measurements
    import io

    z = np.load(io.BytesIO(r.artefacts[0].data), allow_pickle=False)
    _check_poisoned_set(z, data, rate=0.05, source=0, target=1)
    np.testing.assert_array_equal(z["poisoned"], r.tables["training"]["poisoned"])
    assert PoisoningCheck().run(digits_target, data, p.model_copy(update={"save_poisoned": False})).artefacts == []


@pytest.fixture(scope="module")
def extraction(digits_target, digits_split, tmp_path_factory):
    data = digits_split[1].subset(range(80), name="digits-80")
    out = tmp_path_factory.mktemp("ext")
    torch.set_num_threads(1)
    run = assess(digits_target, data, out=out, checks={"extraction": {"query_budget": 80, "epochs": 4, "steps": 2}})
    return out, run, data


def test_saved_surrogate_loads_without_arch_and_has_the_measured_fidelity(extraction, digits_target):
    out, run, data = extraction
    path = out / "artefacts" / "surrogate.safetensors"
    sur = load_target(path, input_shape=(1, 8, 8), num_classes=10)
    held = data.x[40:]  # pool_fraction 0.5 of 80: the held-out part the fidelity is measured on
    with torch.no_grad():
        agree = (sur.predict(held).argmax(1) == digits_target.predict(held).argmax(1)).float().mean().item()
    assert agree == pytest.approx(run.results[0].measurement("extraction.fidelity").value)
    s = run.results[0].summary
    assert s.surrogate_file == "artefacts/surrogate.safetensors" and s.surrogate_arch == "surrogate-cnn"
    listed = {a.path: a for a in run.artefacts}
    assert listed["artefacts/surrogate.safetensors"].kind == "surrogate-model"


def test_aisec_assess_runs_on_the_saved_surrogate(extraction, tmp_path, aisec_cache):
    from aisec.cli.main import main
    from aisec.core.evidence import file_sha256

    out, _, _ = extraction
    path = out / "artefacts" / "surrogate.safetensors"
    plan = tmp_path / "plan.yaml"  # the robustness check kept small: one attack, no probes, no CLEVER
    plan.write_text("model: {path: PLACEHOLDER}\ndata: {source: digits, options: {split: test}}\n"
                    "checks: {robustness: {attacks: [fgsm], eps: [0.1], samples: 16, clever: {enabled: false}, "
                    "reliability: {enabled: false}}}\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["assess", "--plan", str(plan), "-m", str(path), "--no-store", "-q",
                                    "-o", str(tmp_path / "sur"), "--json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)["evidence"]
    assert records and {r["resource"]["model_sha256"] for r in records} == {file_sha256(path)}


def test_the_console_says_how_to_assess_the_surrogate(extraction):
    from aisec.cli.summary import surrogate_command
    from aisec.core.plan import Plan

    out, run, _ = extraction
    run.plan = Plan.parse({"model": "digits-cnn", "data": {"source": "digits", "options": {"split": "test"}}})
    try:
        cmd = surrogate_command(run)
    finally:
        run.plan = None
    assert cmd == f"aisec assess -m {out}/artefacts/surrogate.safetensors -d digits --split test -o {out}-surrogate"


def _safetensors(path: Path, meta: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    from aisec.models.zoo import SurrogateMLP

    save_file(SurrogateMLP(64, 10).state_dict(), str(path), metadata=meta)
    return path


def test_a_file_cannot_name_an_architecture_outside_the_zoo(tmp_path):
    bad = _safetensors(tmp_path / "a.safetensors", {"aisec.arch": "os:system", "aisec.arch_kwargs": "{}"})
    with pytest.raises(TargetError, match="not one of aisec's"):
        load_target(bad, input_shape=(1, 8, 8), num_classes=10)
    odd = _safetensors(tmp_path / "b.safetensors", {"aisec.arch": "surrogate-mlp",
                                                    "aisec.arch_kwargs": '{"in_features": "64; rm"}'})
    with pytest.raises(TargetError, match="positive integers"):
        load_target(odd, input_shape=(1, 8, 8), num_classes=10)
    ok = _safetensors(tmp_path / "c.safetensors", {"aisec.arch": "surrogate-mlp",
                                                   "aisec.arch_kwargs": '{"in_features": 64, "num_classes": 10}'})
    assert load_target(ok, input_shape=(1, 8, 8), num_classes=10).spec.num_classes == 10
    plain = tmp_path / "d.safetensors"
    from safetensors.torch import save_file

    from aisec.models.zoo import SurrogateMLP

    save_file(SurrogateMLP(64, 10).state_dict(), str(plain))  # no record: --arch is still needed
    with pytest.raises(TargetError, match="holds only weights"):
        load_target(plain, input_shape=(1, 8, 8), num_classes=10)
