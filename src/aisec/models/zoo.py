"""Small reference architectures: the demo's digits CNN and LeNet5 as used by advertorch.

They are importable by path (``aisec.models.zoo:DigitsCNN``) so a weights file plus this
architecture is a complete, code-free model description.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """A small CNN for 1x8x8 images (scikit-learn's digits), ~20k parameters."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))  # an annotation, not cast(): TorchScript
        return out


class LeNet5(nn.Module):
    """LeNet5 as trained in advertorch's examples (1x28x28 MNIST, keys conv1/conv2/linear1/linear2)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(2)
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.relu3 = nn.ReLU()
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.relu1(self.conv1(x)))
        x = self.maxpool2(self.relu2(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)
        out: torch.Tensor = self.linear2(self.relu3(self.linear1(x)))
        return out


class TabularMLP(nn.Module):
    """A two-layer MLP for tabular data."""

    def __init__(self, in_features: int, num_classes: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.reshape(x.shape[0], -1))
        return out


class SurrogateCNN(nn.Module):
    """The extraction check's surrogate for images ``(C, H, W)`` with H, W ≥ 4: a small CNN the attacker can
    pick without knowing the target (two convolutions, 4x4 adaptive pooling, two linear layers)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class SurrogateMLP(nn.Module):
    """The extraction check's surrogate for other inputs: flatten, one hidden layer of 256."""

    def __init__(self, in_features: int, num_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class DenoisingAutoencoder(nn.Module):
    """A small residual convolutional autoencoder for images ``(C, H, W)``: ``x + decode(encode(x))``.

    One stride-2 bottleneck (so it also takes odd sizes: the decoder's output is cropped to the input's)
    and a residual connection, so a freshly initialised one is close to the identity and the classifier
    behind it starts at its own clean accuracy. Trained by the ``denoiser`` training defence to map
    adversarial examples back to their clean images (:mod:`aisec.defences.training.denoiser`).
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.decode = nn.Sequential(nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.decode(self.encode(x))[..., : x.shape[-2], : x.shape[-1]]
        out: torch.Tensor = x + r
        return out


class DenoisedClassifier(nn.Module):
    """A denoising autoencoder in front of a classifier: ``classifier(denoiser(x))``, one module, one file.

    ``stage`` picks what ``forward`` computes (``"full"``, or for training: ``"classifier"`` alone,
    ``"denoiser"`` alone, ``"input"`` = the input unchanged); a loaded model is always ``"full"``.
    """

    def __init__(self, classifier: nn.Module, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.denoiser = DenoisingAutoencoder(in_channels, width)
        self.classifier = classifier
        self.stage = "full"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage == "input":
            return x
        if self.stage == "denoiser":
            out: torch.Tensor = self.denoiser(x)
            return out
        if self.stage == "classifier":
            out = self.classifier(x)
            return out
        out = self.classifier(self.denoiser(x))
        return out


class DenoisedDigitsCNN(DenoisedClassifier):
    """:class:`DenoisingAutoencoder` + :class:`DigitsCNN` (zoo name ``dae-digits-cnn``)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__(DigitsCNN(num_classes, in_channels), in_channels, width)


class DenoisedLeNet5(DenoisedClassifier):
    """:class:`DenoisingAutoencoder` + :class:`LeNet5` (zoo name ``dae-lenet5``)."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__(LeNet5(num_classes), 1, width)
