"""Built-in models, addressable by name wherever a model path is accepted."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from aisec.core.errors import TargetError


def _advertorch_file(name: str) -> Path:
    spec = importlib.util.find_spec("advertorch_examples")
    if spec is None or spec.origin is None:
        raise TargetError(
            f"built-in model needs the advertorch sdist for its weights: "
            f"pip install --no-deps advertorch==0.2.3 ({name})"
        )
    return Path(os.path.dirname(spec.origin)) / "trained_models" / name


def _lenet(file: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torch

        from aisec.models.zoo import LeNet5

        net = LeNet5()
        sd = torch.load(_advertorch_file(file), map_location="cpu", weights_only=True)
        net.load_state_dict(sd)
        return net.eval()

    return build


def _digits() -> nn.Module:
    from aisec.models.train import digits_cnn

    return digits_cnn()


BUILTIN_MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], str]] = {
    "digits-cnn": (_digits, (1, 8, 8), "small CNN trained in seconds on scikit-learn digits (demo)"),
    "lenet5-mnist": (_lenet("mnist_lenet5_clntrained.pt"), (1, 28, 28), "advertorch LeNet5, clean MNIST training"),
    "lenet5-mnist-adv": (
        _lenet("mnist_lenet5_advtrained.pt"), (1, 28, 28), "advertorch LeNet5, PGD adversarial training"
    ),
}


def builtin_model_file(name: str) -> Path | None:
    """The weights file behind a built-in model, if it has one (for the digest)."""
    return {
        "lenet5-mnist": lambda: _advertorch_file("mnist_lenet5_clntrained.pt"),
        "lenet5-mnist-adv": lambda: _advertorch_file("mnist_lenet5_advtrained.pt"),
    }.get(name, lambda: None)()
