"""A denoising autoencoder in front of a frozen classifier, trained to map adversarial examples back to clean ones.

The SAFAIR contest's Vicomtech entry; in the literature Gu & Rigazio, "Towards Deep Neural Network
Architectures Robust to Adversarial Examples" (ICLR 2015 workshop, https://arxiv.org/abs/1412.5068), and
MagNet / the high-level guided denoiser (Meng & Chen 2017; Liao et al. 2018) are of this kind. It is
also the textbook case of a defence that holds only against the attack it was trained on: the composed
model is one differentiable network, so an attacker who attacks it end to end (white box) goes straight
through the autoencoder (Carlini & Wagner, "MagNet and 'Efficient Defenses ...' Are Not Robust",
https://arxiv.org/abs/1711.08478; Athalye et al. 2018). ``aisec assess`` on the written model runs
exactly that adaptive attack; tests/unit/defences/test_denoiser.py shows both sides.

Each batch: PGD examples (cross-entropy, random start, ``steps`` steps, the inner loop of
:mod:`~aisec.defences.training.pgd_at`) crafted against the **classifier alone** — the attack the
denoiser learns to undo — then one optimiser step on the mean squared error between the
autoencoder's output and the clean batch, over the adversarial and (``keep_clean``) the clean inputs.
The classifier is frozen (its weights are copied unchanged into the output); only the autoencoder
(:class:`aisec.models.zoo.DenoisingAutoencoder`, residual, one stride-2 bottleneck) is trained, from
a seeded fresh initialisation. When the target normalises its inputs, the autoencoder works on the
normalised ones, in front of the classifier module.

The written file is the composed module (zoo ``dae-digits-cnn`` or ``dae-lenet5``, with its integer
arguments in the metadata), so ``aisec assess -m OUT.safetensors`` loads it without ``--arch``. Only
those zoo classifiers can be composed into a code-free file; another architecture is refused.

>>> aisec defend -m digits-cnn -d digits --recipe denoiser:eps=0.2,epochs=20 -o dae.safetensors
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from aisec.core.errors import ConfigError
from aisec.core.registry import register
from aisec.defences.training.base import Forward
from aisec.defences.training.pgd_at import PGDATParams, pgd_examples
from aisec.models.zoo import DenoisedClassifier, DenoisedDigitsCNN, DenoisedLeNet5, DigitsCNN, LeNet5


class DenoiserParams(PGDATParams):
    """PGD's budget and steps (the examples the autoencoder learns to undo) and the autoencoder's size."""

    width: int = Field(default=32, ge=1, le=4096, description="Channels of the autoencoder's hidden layers.")
    keep_clean: bool = Field(default=True, description="Also train clean -> clean, so clean accuracy is kept.")


def compose(model: nn.Module, width: int, seed: int) -> tuple[DenoisedClassifier, dict[str, int]]:
    """A fresh (seeded) autoencoder in front of a frozen copy of ``model``, and the composed zoo class's
    integer arguments (what the file's metadata records).

    Raises:
        ConfigError: ``model`` is not a zoo classifier that has a composed zoo architecture.
    """
    torch.manual_seed(seed)
    net: DenoisedClassifier
    if type(model) is DigitsCNN:
        first, last = model.features[0], model.classifier[-1]
        assert isinstance(first, nn.Conv2d) and isinstance(last, nn.Linear)
        kwargs = {"num_classes": last.out_features, "in_channels": first.in_channels, "width": width}
        net = DenoisedDigitsCNN(**kwargs)
    elif type(model) is LeNet5:
        kwargs = {"num_classes": model.linear2.out_features, "width": width}
        net = DenoisedLeNet5(**kwargs)
    else:
        raise ConfigError(f"the denoiser writes the autoencoder and the classifier as one zoo architecture; it "
                          f"composes with digits-cnn and lenet5, not {type(model).__name__}")
    net.classifier = copy.deepcopy(model).eval()
    for p in net.classifier.parameters():
        p.requires_grad_(False)
    for p in net.denoiser.parameters():
        p.requires_grad_(True)
    return net, kwargs


@contextmanager
def stage(model: nn.Module, name: str) -> Iterator[None]:
    """``model`` (a :class:`DenoisedClassifier`) computing only ``name`` (classifier, denoiser, input) inside."""
    assert isinstance(model, DenoisedClassifier)
    old, model.stage = model.stage, name
    try:
        yield
    finally:
        model.stage = old


@register("training", "denoiser", inner="pgd", paper="https://arxiv.org/abs/1412.5068",
          aliases=("dae", "denoising-autoencoder", "autoencoder"))
class Denoiser:
    """A denoising autoencoder trained on (PGD example -> clean) pairs, in front of the frozen classifier."""

    Params = DenoiserParams

    def compose(self, model: nn.Module, params: DenoiserParams, seed: int) -> tuple[nn.Module, dict[str, int]]:
        """The module to train instead of a copy of ``model`` (see :func:`compose`)."""
        if params.mode == "retrain":
            raise ConfigError("the denoiser keeps the classifier as it is and trains a fresh autoencoder; "
                              "mode=retrain does not apply (leave mode unset)")
        return compose(model, params.width, seed)

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: DenoiserParams,
             value_range: tuple[float, float]) -> torch.Tensor:
        model.eval()
        with stage(model, "classifier"):
            x_adv = pgd_examples(forward, x, y, params, value_range)
        model.train()
        assert isinstance(model, DenoisedClassifier)
        model.classifier.eval()  # frozen: batch-norm statistics, if any, stay the classifier's
        src = torch.cat([x_adv, x]) if params.keep_clean else x_adv
        with torch.no_grad(), stage(model, "input"):
            ref = forward(torch.cat([x, x]) if params.keep_clean else x)
        with stage(model, "denoiser"):
            return F.mse_loss(forward(src), ref)
