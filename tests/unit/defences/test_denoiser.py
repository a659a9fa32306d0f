"""The denoiser training defence: a denoising autoencoder in front of the frozen digits CNN.

Both sides of the honest story, on 200 digits-test samples, PGD Linf eps 0.2 (the budget it was trained at):
- against the attack it was trained on (PGD crafted on the classifier alone, the attacker unaware of
  the autoencoder) it restores most of the accuracy: measured classifier 0.000-0.005, composed model
  0.77 on the same adversarials (clean 0.98 -> 0.98);
- an adaptive, end-to-end white-box PGD on the composed model (what ``aisec assess`` runs on the written
  file) breaks it: measured robust accuracy 0.015.
Thresholds leave wide margins: composed >= 0.6 on the transferred examples, adaptive <= 0.1.
Training: 10 epochs of 1,257 digits with 5-step PGD, about 10 s of CPU on one core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aisec.core.errors import ConfigError

EPS = 0.2
RECIPE = f"denoiser:eps={EPS},steps=5,epochs=10,batch_size=64,lr=5e-3"


@pytest.fixture(scope="module")
def written(digits_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    import aisec

    out = tmp_path_factory.mktemp("dae") / "dae.safetensors"
    rec = aisec.defend(digits_model, aisec.digits(split="train"), RECIPE, out, eval_data=aisec.digits(split="test"))
    return out, rec


def _test_set() -> tuple[torch.Tensor, torch.Tensor]:
    from aisec.data.builtin import digits

    te = digits(split="test")
    return te.x[:200].float(), te.y[:200].long()


def test_it_undoes_the_attack_it_was_trained_on_and_an_adaptive_attack_still_breaks_it(written, digits_target):
    from aisec.attacks.base import run_attack
    from aisec.targets.loading import load_target

    out, rec = written
    composed = load_target(out, input_shape=(1, 8, 8), num_classes=10)  # no --arch: the metadata names it
    x, y = _test_set()
    transferred = run_attack("pgd", digits_target, x, y, {"eps": EPS, "steps": 20}, seed=1)
    on_classifier = float(transferred.robust.float().mean())
    with torch.no_grad():
        restored = float((composed.logits(transferred.x_adv).argmax(1) == y).float().mean())
    adaptive = run_attack("pgd", composed, x, y, {"eps": EPS, "steps": 20}, seed=1)
    end_to_end = float(adaptive.robust.float().mean())
    assert on_classifier <= 0.05, on_classifier  # measured 0.000
    assert restored >= 0.6, restored  # measured 0.77: the denoiser maps those adversarials back
    assert end_to_end <= 0.1 and end_to_end < restored - 0.5, (end_to_end, restored)  # measured 0.015
    assert rec.clean_accuracy_after >= rec.clean_accuracy_before - 0.03  # measured 0.981 -> 0.981
    assert rec.epoch_loss[-1] < 0.7 * rec.epoch_loss[0]


def test_the_file_is_the_composed_model_with_the_classifier_unchanged(written, digits_model):
    import json

    from safetensors import safe_open

    from aisec.models.zoo import DenoisedDigitsCNN
    from aisec.targets.loading import load_target

    out, rec = written
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["aisec.arch"] == "dae-digits-cnn" and meta["aisec.defence"].startswith("denoiser:")
    assert json.loads(meta["aisec.arch_kwargs"]) == {"num_classes": 10, "in_channels": 1, "width": 32}
    module = load_target(out, input_shape=(1, 8, 8), num_classes=10).module  # type: ignore[attr-defined]
    assert isinstance(module, DenoisedDigitsCNN) and module.stage == "full"
    frozen = module.classifier.state_dict()
    assert all(torch.equal(frozen[k], v) for k, v in digits_model.state_dict().items())  # frozen, copied as is
    x, _ = _test_set()
    with torch.no_grad():
        assert not torch.equal(module.denoiser(x), x)  # the autoencoder was trained (not the identity)
    assert rec.arch == "dae-digits-cnn" and rec.defence == "denoiser"


def test_it_refuses_what_it_cannot_compose(digits_target, tmp_path: Path) -> None:
    from aisec.defences.training import train_defended
    from aisec.targets.torch import TorchTarget

    data = __import__("aisec").digits(split="train").subset(list(range(32)))
    odd = TorchTarget(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_shape=(1, 8, 8),
                      num_classes=10, device="cpu")
    with pytest.raises(ConfigError, match="composes with digits-cnn and lenet5, not Sequential"):
        train_defended(odd, data, "denoiser:epochs=1")
    with pytest.raises(ConfigError, match="mode=retrain does not apply"):
        train_defended(digits_target, data, "denoiser:epochs=1,mode=retrain")


def test_the_autoencoder_starts_near_the_identity_and_keeps_odd_sizes() -> None:
    from aisec.models.zoo import DenoisingAutoencoder

    torch.manual_seed(0)
    for shape in ((2, 1, 8, 8), (2, 1, 7, 9), (2, 3, 28, 28)):
        ae = DenoisingAutoencoder(in_channels=shape[1], width=8)
        x = torch.rand(shape)
        with torch.no_grad():
            out = ae(x)
        assert out.shape == x.shape
        assert float((out - x).abs().mean()) < 0.5  # residual: x plus a small untrained correction
