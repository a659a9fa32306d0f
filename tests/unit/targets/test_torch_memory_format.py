"""TorchTarget runs a convolutional image model channels-last on the CPU only where that changes no value.

The layout is a speed choice (oneDNN's convolutions and poolings are faster there); it must never change an
output, a prediction or the shape and layout of an input gradient, and a model that cannot run in it
(``.view`` on its activations) must keep working as given.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.attacks.base import run_attack
from aisec.core.errors import ConfigError
from aisec.targets.torch import TorchTarget


def _cnn(seed: int = 0, view: bool = False) -> nn.Module:
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.max_pool2d(torch.relu(self.c2(torch.relu(self.c1(x)))), 2)
            # ``view`` needs a contiguous tensor: this model cannot run channels-last
            return self.fc(h.view(h.shape[0], -1) if view else h.flatten(1))

    return Net()


def _pair(**kw: object) -> tuple[TorchTarget, TorchTarget]:
    fast = TorchTarget(_cnn(**kw), input_shape=(3, 8, 8), num_classes=5, device="cpu",  # type: ignore[arg-type]
                       memory_format="auto")
    plain = TorchTarget(_cnn(**kw), input_shape=(3, 8, 8), num_classes=5, device="cpu",  # type: ignore[arg-type]
                        memory_format="contiguous")
    return fast, plain


def test_channels_last_changes_no_output_and_no_gradient() -> None:
    fast, plain = _pair()
    x = torch.rand(16, 3, 8, 8)
    torch.testing.assert_close(fast.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)
    assert fast.memory_format == "channels_last" and plain.memory_format == "contiguous"
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ga = torch.autograd.grad(fast.logits(xa)[:, 0].sum(), xa)[0]
    gb = torch.autograd.grad(plain.logits(xb)[:, 0].sum(), xb)[0]
    assert ga.is_contiguous() and ga.shape == x.shape  # the attacks ``view`` their gradients
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
    # an attack's result: the same adversarial examples, to float tolerance
    y = plain.predict(x).argmax(1)
    a = run_attack("pgd", fast, x, y, {"eps": 0.05, "steps": 5, "random_start": False})
    b = run_attack("pgd", plain, x, y, {"eps": 0.05, "steps": 5, "random_start": False})
    assert (a.x_adv - b.x_adv).abs().max() <= 1e-4
    assert ((a.x_adv - x).abs().amax() <= 0.05 + 1e-6).item()


def test_a_model_that_cannot_run_channels_last_stays_as_given() -> None:
    fast, plain = _pair(view=True)
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(RuntimeError):  # what would happen without the probe
        _cnn(view=True).to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast.predict(x), plain.predict(x))
    assert fast.memory_format == "contiguous"
    assert fast.predict(x[:2]).shape == (2, 5)  # and it keeps working


def test_a_module_handed_over_in_python_keeps_its_layout_and_a_loaded_one_may_switch(tmp_path) -> None:
    from safetensors.torch import save_file

    from aisec.targets.loading import load_target

    net = _cnn()
    t = TorchTarget(net, input_shape=(3, 8, 8), num_classes=5, device="cpu")
    t.predict(torch.rand(2, 3, 8, 8))
    assert t.memory_format == "contiguous" and all(p.is_contiguous() for p in net.parameters())
    save_file(net.state_dict(), str(tmp_path / "ok.safetensors"))  # the caller's module is still theirs
    from aisec.models.zoo import DigitsCNN

    save_file(DigitsCNN(num_classes=10).state_dict(), str(tmp_path / "d.safetensors"))
    loaded = load_target(str(tmp_path / "d.safetensors"), arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10,
                         device="cpu")
    loaded.predict(torch.rand(3, 1, 8, 8))
    assert loaded.memory_format == "channels_last"


def test_non_image_models_and_bad_settings() -> None:
    mlp = TorchTarget(nn.Sequential(nn.Linear(4, 3)), input_shape=(4,), num_classes=3, device="cpu")
    mlp.predict(torch.rand(2, 4))
    assert mlp.memory_format == "contiguous"
    with pytest.raises(ConfigError, match="memory_format must be"):
        TorchTarget(_cnn(), input_shape=(3, 8, 8), num_classes=5, memory_format="nhwc")  # type: ignore[arg-type]
