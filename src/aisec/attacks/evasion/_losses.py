"""The objectives gradient attacks ascend: cross-entropy, the C&W margin and the DLR ratio.

Shared by FGSM, BIM and PGD (``loss`` parameter). Each function returns a per-sample objective
that the attack *maximises*, untargeted or targeted, so the step is always ``x + alpha * dir(grad)``.

- ``ce``: cross-entropy of the true label (untargeted) or minus that of the target label.
- ``margin``: the C&W margin on logits (Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644),
  ``max_{i != y} z_i - z_y`` (untargeted) or ``z_t - max_{i != t} z_i`` (targeted); unclamped, so
  it keeps pushing past the boundary. Its gradient does not vanish when the softmax saturates.
- ``dlr``: Croce & Hein's difference of logits ratio (https://arxiv.org/abs/2003.01690, eq. 4 and
  the targeted version of section 3.2), ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``
  untargeted and ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` targeted, with
  ``z_pi1 >= z_pi2 >= ...`` the sorted logits. Invariant to shifting and (positively) scaling the
  logits, so a model whose logits are multiplied by 1000 is attacked exactly as the original.

Why: a model with huge logits (or one trained to saturate its softmax) gives cross-entropy
gradients that round to zero in float32, which masks the gradient from CE-based attacks without
making the model any more robust (Carlini & Wagner 2017; Croce & Hein 2020).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from aisec.core.errors import ConfigError

Loss = Literal["ce", "margin", "dlr"]
LOSSES: tuple[str, ...] = ("ce", "margin", "dlr")


def _best_other(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    other = logits.clone()
    other.scatter_(1, labels[:, None], -torch.inf)
    return other.amax(1)


def objective(
    logits: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None, loss: str
) -> torch.Tensor:
    """Per-sample objective to maximise for ``loss`` (``ce``, ``margin`` or ``dlr``).

    ``logits`` ``(N, K)`` are cast to float32; ``y`` the true labels, ``target_labels`` the
    targets of a targeted attack (or None).

    Raises:
        ConfigError: an unknown loss, or DLR on too few classes (3 untargeted, 4 targeted).
    """
    z = logits.float()
    k = z.shape[1]
    if loss == "ce":
        if target_labels is None:
            return F.cross_entropy(z, y, reduction="none")
        return -F.cross_entropy(z, target_labels, reduction="none")
    if loss == "margin":
        if target_labels is None:
            return _best_other(z, y) - z.gather(1, y[:, None]).squeeze(1)
        return z.gather(1, target_labels[:, None]).squeeze(1) - _best_other(z, target_labels)
    if loss == "dlr":
        need = 3 if target_labels is None else 4
        if k < need:
            raise ConfigError(f"loss 'dlr' needs at least {need} classes{' when targeted' if need == 4 else ''}; "
                              f"the model has {k}. Use loss 'margin'.")
        zs = z.sort(1, descending=True).values
        zy = z.gather(1, y[:, None]).squeeze(1)
        if target_labels is None:
            return -(zy - _best_other(z, y)) / (zs[:, 0] - zs[:, 2] + 1e-12)
        zt = z.gather(1, target_labels[:, None]).squeeze(1)
        return -(zy - zt) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)
    raise ConfigError(f"unknown loss '{loss}'; choose one of {', '.join(LOSSES)}")
