"""Training defences: PGD-AT really buys PGD robustness at a bounded clean cost, the defended file loads
through the normal (code-free) loader, outputs are never overwritten by accident, and recipes fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aisec.core.errors import ConfigError
from aisec.core.registry import names

PGD_AT = "pgd-at:eps=0.15,steps=3,epochs=3,batch_size=128,lr=2e-3"


def _robust(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.1) -> float:
    from aisec.attacks.base import run_attack
    from aisec.targets.torch import TorchTarget

    t = TorchTarget(module, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    return float(run_attack("pgd", t, x, y, {"eps": eps, "steps": 20}).robust.float().mean())


@pytest.fixture(scope="module")
def pgd_at(digits_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The digits CNN fine-tuned with PGD-AT (about 6 s on one loaded core), written by ``aisec.defend``."""
    import aisec

    out = tmp_path_factory.mktemp("defend") / "pgd.safetensors"
    rec = aisec.defend(digits_model, aisec.digits(split="train"), PGD_AT, out, eval_data=aisec.digits(split="test"))
    return out, rec


def test_pgd_at_raises_pgd_robust_accuracy_at_a_bounded_clean_cost(pgd_at, digits_model) -> None:
    from aisec.data.builtin import digits
    from aisec.targets.loading import load_target

    out, rec = pgd_at
    test = digits(split="test")
    x, y = test.x[:200].float(), test.y[:200].long()
    defended = load_target(out, input_shape=(1, 8, 8), num_classes=10).module  # type: ignore[attr-defined]
    before, after = _robust(digits_model, x, y), _robust(defended, x, y)
    assert after >= before + 0.10, (before, after)  # measured: 0.53 -> 0.71 on these 200
    assert rec.clean_accuracy_before - rec.clean_accuracy_after <= 0.04  # measured 0.980 -> 0.965
    assert rec.clean_accuracy_after > 0.9
    assert len(rec.epoch_loss) == 3 and rec.epoch_loss[-1] < rec.epoch_loss[0]


def test_the_defended_file_loads_through_the_normal_loader_and_matches_its_record(pgd_at, digits_model) -> None:
    from aisec.core.evidence import file_sha256
    from aisec.data.builtin import digits
    from aisec.defences.training.defend import record_path
    from aisec.targets.loading import load_target

    out, rec = pgd_at
    target = load_target(out, input_shape=(1, 8, 8), num_classes=10)  # no arch: the file's metadata names it
    again = load_target(out, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10)
    x = digits(split="test").x[:64].float()
    assert torch.equal(target.logits(x), again.logits(x))
    assert not torch.equal(target.logits(x), digits_model(x))  # trained, and the input model was not touched
    saved = json.loads(record_path(out).read_text())
    assert saved["output_sha256"] == file_sha256(out) == target.spec.digest
    assert saved["arch"] == "digits-cnn" and saved["defence"] == "pgd-at" and saved["params"]["eps"] == 0.15
    assert saved["train_data"]["digest"] == digits(split="train").info.digest
    assert saved["eval_data"]["name"] == "digits-test" and saved["seconds"] > 0 and saved["epochs_per_minute"] > 0
    assert rec.model_digest  # the input model's weights digest


def test_an_existing_output_is_refused_before_training_and_the_input_never_overwritten(
        tmp_path: Path, digits_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    import aisec
    import aisec.defences.training.defend as defend_mod

    def never(*a: object, **k: object) -> None:
        raise AssertionError("trained although the output was refused")

    monkeypatch.setattr(defend_mod, "train_defence", never)
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"precious")
    with pytest.raises(ConfigError, match=r"already exists.*--force"):
        aisec.defend(digits_model, "digits", "gaussian-augment:epochs=1", out)
    assert out.read_bytes() == b"precious"
    with pytest.raises(ConfigError, match=r"\*\.safetensors"):
        aisec.defend(digits_model, "digits", "gaussian-augment:epochs=1", tmp_path / "m.pt")
    src = tmp_path / "in.safetensors"
    save_file(digits_model.state_dict(), str(src))
    with pytest.raises(ConfigError, match="refusing to overwrite the input model"):
        aisec.defend(src, "digits", "gaussian-augment:epochs=1", src, arch="digits-cnn", force=True)
    monkeypatch.undo()
    rec = aisec.defend(digits_model, aisec.digits(split="train"), "gaussian-augment:epochs=1,batch_size=256", out,
                       force=True)
    assert out.read_bytes()[:8] != b"precious" and rec.output_sha256


@pytest.mark.parametrize(("recipe", "says"), [
    ("pgd-at:eps=abc", "eps: Input should be a valid number"),
    ("pgd-at:epsilon=0.1", "epsilon: unknown parameter; it takes epochs"),
    ("no-such:eps=0.1",
     "unknown training defence 'no-such'; known: denoiser, fast-fgsm, gaussian-augment, pgd-at, trades"),
    ("trades:beta", "'beta' is not key=value"),
    ("fast-fgsm:norm=l0", "linf and l2"),
    ("pgd-at:epochs=0", "epochs: Input should be greater than or equal to 1"),
])
def test_a_bad_recipe_is_one_error_line(recipe: str, says: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aisec.cli.main import main

    res = CliRunner().invoke(main, ["defend", "-m", "digits-cnn", "-r", recipe, "-o", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recipe") and says in lines[0], res.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_recipes_parse_from_text_and_plan_mappings_alike() -> None:
    from aisec.defences.training import parse_recipe

    a = parse_recipe("pgd-at:eps=8/255,steps=7,epochs=2")
    b = parse_recipe({"name": "madry", "eps": 8 / 255, "steps": 7, "epochs": 2})
    assert a == b and a.name == "pgd-at" and a.params.eps == pytest.approx(8 / 255)  # type: ignore[attr-defined]
    assert a.label() == f"pgd-at:epochs=2,eps={8 / 255},steps=7"
    assert parse_recipe("fast-fgsm").params.schedule == "cyclic"  # Wong et al.'s schedule is the default there
    assert names("training") == ["denoiser", "fast-fgsm", "gaussian-augment", "pgd-at", "trades"]


@pytest.mark.parametrize("recipe", ["pgd-at:steps=2", "fast-fgsm", "trades:steps=2", "gaussian-augment"])
def test_every_defence_trains_a_copy_deterministically(recipe: str, digits_target) -> None:
    from aisec.data.builtin import digits
    from aisec.defences.training import train_defended

    data = digits(split="train").subset(list(range(128)))
    before = {k: v.clone() for k, v in digits_target.module.state_dict().items()}
    one = train_defended(digits_target, data, f"{recipe}{',' if ':' in recipe else ':'}epochs=1,batch_size=64")
    two = train_defended(digits_target, data, f"{recipe}{',' if ':' in recipe else ':'}epochs=1,batch_size=64")
    after = digits_target.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the target itself is untouched
    trained = one.module.state_dict()
    assert any(not torch.equal(trained[k], before[k]) for k in before)
    assert all(torch.equal(trained[k], two.module.state_dict()[k]) for k in trained)  # same seed, same model
    assert one.record.eval_data.name == data.info.name  # no eval data: measured on the training data


def test_inner_examples_stay_in_the_ball_and_the_range_and_beat_random_noise(digits_model, digits_test_batch) -> None:
    import torch.nn.functional as F

    from aisec.core.types import Norm
    from aisec.defences.training.pgd_at import PGDATParams, pgd_examples

    x, y = digits_test_batch
    torch.manual_seed(0)
    for norm, eps in ((Norm.LINF, 0.1), (Norm.L2, 0.5)):
        p = PGDATParams(eps=eps, norm=norm, steps=5)
        adv = pgd_examples(digits_model, x, y, p, (0.0, 1.0))
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm is Norm.LINF else d.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5 and float(adv.min()) >= 0 and float(adv.max()) <= 1
        noise = (x + eps * torch.sign(torch.randn_like(x)) * (1 if norm is Norm.LINF else 1 / 8)).clamp(0, 1)
        with torch.no_grad():
            assert F.cross_entropy(digits_model(adv), y) > F.cross_entropy(digits_model(noise), y) + 0.5


def test_defend_cli_writes_a_model_that_assess_loads_right_away(tmp_path: Path, aisec_cache: str) -> None:
    from click.testing import CliRunner

    from aisec.cli.main import main

    out = tmp_path / "g.safetensors"
    runner = CliRunner()
    res = runner.invoke(main, ["defend", "-m", "digits-cnn", "-d", "digits", "-c", "256", "-q",
                               "-r", "gaussian-augment:sigma=0.2,epochs=1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"defended model: {out}" in res.stdout and "clean accuracy on digits-test (539)" in res.stdout
    again = runner.invoke(main, ["defend", "-m", "digits-cnn", "-r", "gaussian-augment:epochs=1", "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    rep = tmp_path / "rep"
    res = runner.invoke(main, ["assess", "-m", str(out), "-d", "digits", "--split", "test", "-t", "robustness",
                               "-a", "fgsm", "--eps", "0.1", "-c", "40", "--clever-samples", "4", "--no-store",
                               "-o", str(rep), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["checks"]["robustness"]["summary"]["curves"][0]["attack"] == "fgsm"
