"""Training defences: train a defended copy of a model and write it as a safe model file.

One module per defence, each registered in the ``training`` family (``aisec plugins`` lists them):
:mod:`~aisec.defences.training.pgd_at` (Madry et al. 2018), :mod:`~aisec.defences.training.fast_fgsm`
(Wong et al. 2020), :mod:`~aisec.defences.training.trades` (Zhang et al. 2019) and
:mod:`~aisec.defences.training.gaussian` (Gaussian-noise augmentation) and
:mod:`~aisec.defences.training.denoiser` (a denoising autoencoder in front of the frozen classifier).
They share the loop and the optimiser parameters of :mod:`~aisec.defences.training.base`;
:mod:`~aisec.defences.training.defend` trains and writes the result (``aisec defend``, :func:`aisec.api.defend`).

>>> defended = train_defended(target, aisec.digits(split="train"), "pgd-at:eps=0.1,epochs=5")
>>> record = save_defended(defended, "defended.safetensors")
"""

from __future__ import annotations

from aisec.defences.training.base import DefenceDivergedError, TrainingParams
from aisec.defences.training.defend import DefenceRecord, Defended, check_out, save_defended, train_defended
from aisec.defences.training.recipe import DefenceRecipe, parse_recipe

__all__ = [
    "DefenceDivergedError",
    "DefenceRecipe",
    "DefenceRecord",
    "Defended",
    "TrainingParams",
    "check_out",
    "parse_recipe",
    "save_defended",
    "train_defended",
]
