"""CLI friction a new user trips over (issue 18 #9): the seed's short flags, plan-only settings as flags,
errors that name the flag. Most tests build the plan only (``_plan_from``), so they take milliseconds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aisec.cli.assess import _plan_from, assess
from aisec.cli.main import main
from aisec.core.errors import ConfigError


@pytest.fixture()
def runner(aisec_cache):
    return CliRunner()


def _flags(**over: object) -> dict[str, object]:
    """Every `aisec assess` option unset (as click passes them), then ``over``."""
    f: dict[str, object] = {p.name: None for p in assess.params if p.name}
    f.update({"model": "digits-cnn", "data": "digits", **over})
    return f


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_short_flags_do_not_clash():
    decls = [d for p in assess.params for d in getattr(p, "opts", []) if not d.startswith("--")]
    assert len(decls) == len(set(decls)), sorted(decls)
    assert "-s" in decls


def test_s_is_the_patch_size_and_poisoning_settings_have_flags():
    p = _plan_from(None, _flags(checks="poison", patch_size=4, poison_attack="sleeper-agent", source_class="all",
                                target_class=3))
    assert p.checks["poisoning"] == {"attack": "sleeper-agent", "target_class": 3, "source_class": None,
                                     "trigger": {"kind": "patch", "size": 4}}
    with pytest.raises(ConfigError, match=r"^-s/--patch-size 2: attack 'blended' uses a blend trigger"):
        _plan_from(None, _flags(checks="poison", patch_size=2, poison_attack="blended"))
    with pytest.raises(ConfigError, match=r"^--source-class x: give a class number"):
        _plan_from(None, _flags(checks="poison", source_class="x"))
    with pytest.raises(ConfigError, match=r"^--patch-size 0: "):
        _plan_from(None, _flags(checks="poison", patch_size=0))


def test_patch_larger_than_the_image_names_the_flag(runner, tmp_path):
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t", "poison",
                               "-s", "9", "-q", "--no-store", "-o", str(tmp_path / "o")])
    _one_line_error(res, "larger than the 8x8 image", "-s/--patch-size")


def test_classes_declares_the_model_class_count(runner, tmp_path):
    assert _plan_from(None, _flags(classes=10)).model.num_classes == 10
    with pytest.raises(ConfigError, match=r"^--classes 0: "):
        _plan_from(None, _flags(classes=0))
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "--classes", "5",
                               "-c", "10", "-q", "--no-store", "-o", str(tmp_path / "o")])
    _one_line_error(res, "--classes 5: dataset 'digits-test' has 10 classes")
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "--classes", "10",
                               "-a", "fgsm", "--eps", "0.1", "-c", "10", "--clever-samples", "0", "-q", "--no-store",
                               "-o", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output


def test_a_model_with_other_outputs_than_declared_names_classes(digits_model):
    import torch

    from aisec.core.errors import ShapeError
    from aisec.targets.torch import TorchTarget

    t = TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=5)
    with pytest.raises(ShapeError, match=r"10 outputs but 5 classes were declared.*--classes\."):
        t.predict(torch.zeros(2, 1, 8, 8))


def test_privacy_recipe_and_model_counts_have_flags():
    p = _plan_from(None, _flags(checks="membership", mia_recipe="digits-cnn", mia_epochs=2, mia_lr=0.01,
                                reference_models=4, shadow_models=2))
    assert p.checks["privacy"] == {"recipe": {"architecture": "digits-cnn", "epochs": 2, "lr": 0.01},
                                   "reference_models": 4, "shadow_models": 2}
    with pytest.raises(ConfigError, match=r"^--mia-epochs needs --mia-recipe"):
        _plan_from(None, _flags(checks="privacy", mia_epochs=2))
    with pytest.raises(ConfigError, match=r"^--reference-models 1: "):
        _plan_from(None, _flags(checks="privacy", reference_models=1))
    with pytest.raises(ConfigError, match=r"^--mia-recipe nosuch_pkg_xyz:Net: "):
        _plan_from(None, _flags(checks="privacy", mia_recipe="nosuch_pkg_xyz:Net"))


def test_recipe_attack_without_recipe_names_the_flag(runner, tmp_path):
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "train", "-t", "privacy",
                               "--mia-attacks", "lira", "-q", "--no-store", "-o", str(tmp_path / "o")])
    _one_line_error(res, "--mia-recipe ARCH")


def test_extraction_settings_have_flags():
    p = _plan_from(None, _flags(checks="steal", extract_queries=300, extract_epochs=5))
    assert p.checks["extraction"] == {"query_budget": 300, "epochs": 5}
    with pytest.raises(ConfigError, match=r"^--extract-queries 0: "):
        _plan_from(None, _flags(checks="extraction", extract_queries=0))


def test_arch_finds_a_module_in_the_current_folder(runner, tmp_path, monkeypatch):
    """``--arch mynets:Net`` with ``./mynets.py``: the ``aisec`` console script does not put the current folder
    on the import path (``python -m`` does), so before this the module was 'not in this environment'."""
    import sys

    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    (tmp_path / "friction_mynets.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self, num_classes: int = 10):\n"
        "        super().__init__()\n        self.fc = nn.Linear(64, num_classes)\n\n"
        "    def forward(self, x):\n        return self.fc(x.flatten(1))\n")
    torch.save({f"fc.{k}": v for k, v in torch.nn.Linear(64, 10).state_dict().items()}, tmp_path / "w.pt")
    res = runner.invoke(main, ["assess", "-m", "w.pt", "--arch", "friction_mynets:Net", "-d", "digits", "--split",
                               "test", "-a", "fgsm", "--eps", "0.1", "-c", "10", "--clever-samples", "0", "-q",
                               "--no-store", "-o", "r", "--json"])
    assert res.exit_code == 0, res.output
    assert str(tmp_path) not in sys.path  # the folder was on the path only while the module was imported
    res = runner.invoke(main, ["assess", "-m", "w.pt", "--arch", "friction_nosuch:Net", "-d", "digits", "-q",
                               "--no-store", "-o", "r2"])
    _one_line_error(res, "no module 'friction_nosuch'", "friction_nosuch.py in the current folder")


def test_a_folder_named_like_a_built_in_never_shadows_it_silently(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()  # e.g. left over from an export: not a dataset aisec can read
    (tmp_path / "digits-cnn").write_text("not a model")
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm",
                               "--eps", "0.1", "-c", "10", "--clever-samples", "0", "-q", "--no-store", "-o", "r"])
    assert res.exit_code == 0, res.output  # before: the empty folder was read instead, and failed
    assert "the folder 'digits' in the current folder was not read (give -d ./digits for it)" in res.stderr
    assert "the file 'digits-cnn' in the current folder was not loaded (give -m ./digits-cnn for it)" in res.stderr
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "./digits", "-q", "--no-store", "-o", "r2"])
    _one_line_error(res, "digits")  # ./digits is the folder: its own one-line error, no warning before it
    assert "warning" not in res.output


def test_a_failing_built_in_beside_a_same_named_path_says_how_to_pick_the_path(tmp_path, monkeypatch):
    from aisec.data.loading import load_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    with pytest.raises(ConfigError, match=r"give \./mnist for it"):
        load_dataset("mnist", split="train")


def _digits_folder(root, n: int = 60):
    """An image folder (``labels.csv`` + ``images/``) of ``n`` 8x8 grey digits: data without splits."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    (root / "images").mkdir(parents=True)
    rows = ["filename,label"]
    for i in range(n):
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8), mode="L").save(root / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{d.target[i]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_detect_backdoor_on_a_folder_without_splits(runner, tmp_path):
    folder = _digits_folder(tmp_path / "mine")
    res = runner.invoke(main, ["detect-backdoor", "-m", "digits-cnn", "-d", str(folder), "--method",
                               "spectral-signatures", "--json"])
    assert res.exit_code == 0, res.output  # before: "image folder ... has no splits; drop split='train'"
    import json

    assert json.loads(res.output)["samples"] == 60
    res = runner.invoke(main, ["detect-backdoor", "-m", "digits-cnn", "-d", str(folder), "--split", "train"])
    _one_line_error(res, "has no splits")  # a split asked for explicitly is still checked


def test_has_splits(tmp_path):
    from aisec.data.loading import has_splits

    assert has_splits("digits") and has_splits("fashion-mnist") and not has_splits("mnist")
    assert not has_splits(_digits_folder(tmp_path / "f", n=2)) and not has_splits(tmp_path / "t.csv")
    _digits_folder(tmp_path / "s" / "train", n=2)
    assert has_splits(tmp_path / "s")


def test_console_shows_eps_as_given_full_intervals_and_parameters_in_words(runner, tmp_path, monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", "80")  # a pipe or CI log: rich draws 80 columns
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t",
                               "robustness,steal", "-a", "fgsm,pgd", "--eps", "2/255,0.05", "--steps", "3", "-c", "20",
                               "--clever-samples", "0", "--extract-queries", "64", "--extract-epochs", "2",
                               "-q", "--no-store", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "…" not in out  # before: "0.839–…" (the interval cut at 80 columns)
    rows = [ln for ln in out.splitlines() if re.match(r"│ +(fgsm|pgd) │ linf │", ln)]
    # 2 attacks x (2 eps given + 8/255, the reference budget the check adds)
    assert len(rows) == 6 and all(re.search(r"\d\.\d{3}–\d\.\d{3}", ln) for ln in rows), rows
    assert any(" 2/255 " in ln for ln in rows) and any(" 0.05 " in ln for ln in rows)  # not 0.00784
    # a check without console lines of its own prints its parameters in words, not as a Python dict
    line = next(ln for ln in out.splitlines() if ln.startswith("extraction.fidelity"))
    assert "query budget 64" in line and "soft labels yes" in line and "{" not in line, line


def test_plain_params_and_eps_words():
    from aisec.core.words import eps_words, plain_params

    assert eps_words(8 / 255) == "8/255" and eps_words(0.05) == "0.05"
    assert plain_params({"attack": "pgd", "eps": 2 / 255, "targeted": False, "steps": 10}) == \
        "attack pgd, eps 2/255, targeted no, steps 10"
    assert plain_params({"trigger": {"kind": "patch", "size": 3, "position": "bottom-right"}, "rates": [0.0, 0.01]}) \
        == "trigger: patch, size 3, position bottom-right, rates [0, 0.01]"


def test_a_bad_flag_value_is_said_once_without_plan_paths(tmp_path):
    """``--eot 0`` with two attacks: one message naming the flag, not one per attack with plan locations."""
    res = CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm,pgd",
                                    "--eot", "0", "-c", "10", "-o", str(tmp_path / "o"), "-q", "--no-store"])
    _one_line_error(res, "--eot 0: Input should be greater than or equal to 1")
    assert "attacks.0" not in res.output and res.output.count("greater than or equal") == 1
    assert not (tmp_path / "o").exists()  # refused before anything is written
