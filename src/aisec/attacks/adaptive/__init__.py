"""Adaptive attacks for masked gradients: target wrappers that any gradient attack runs through.

Athalye, Carlini & Wagner 2018 (https://arxiv.org/abs/1802.00420); Tramer et al., "On Adaptive
Attacks to Adversarial Example Defenses", NeurIPS 2020 (https://arxiv.org/abs/2002.08347).

- :class:`EOTTarget` — expectation over transformation for randomised models (``eot.py``).
- :class:`BPDATarget` — straight-through / approximate gradients through a named
  non-differentiable preprocessing (``bpda.py``; names in ``preprocess.py``, registry family
  ``preprocessing``).
- :func:`adaptive_target` — both from plan-style options (``bpda="bit-depth:4"``, ``eot=16``).
- The scale-invariant losses are the ``loss: ce|margin|dlr`` parameter of FGSM, BIM and PGD; the
  transfer attack from a surrogate is the registered attack ``transfer``
  (:mod:`aisec.attacks.evasion.transfer`).
"""

from __future__ import annotations

from aisec.attacks.adaptive.bpda import BPDATarget
from aisec.attacks.adaptive.eot import EOTTarget, is_randomised
from aisec.attacks.adaptive.preprocess import Preprocessing, preprocessing
from aisec.core.errors import ConfigError
from aisec.core.target import Target


def adaptive_target(target: Target, *, bpda: str | None = None, eot: int | None = None) -> Target:
    """``target`` wrapped for an adaptive attack, from plan-style options.

    ``bpda``: a registered preprocessing the deployed system applies before ``target``
    (``"bit-depth:4"``); the result is :class:`BPDATarget`. ``eot``: the number of stochastic
    forwards to average (:class:`EOTTarget`), applied outside BPDA so every draw goes through the
    preprocessing. Neither: ``target`` itself.

    >>> run_attack("pgd", adaptive_target(target, bpda="bit-depth:4", eot=8), x, y, {"eps": 0.1})
    """
    out: Target = target
    if bpda is not None:
        out = BPDATarget(out, bpda)
    if eot is not None:
        if eot < 1:
            raise ConfigError(f"eot must be a number of draws >= 1, got {eot}")
        out = EOTTarget(out, draws=eot)
    return out


__all__ = ["BPDATarget", "EOTTarget", "Preprocessing", "adaptive_target", "is_randomised", "preprocessing"]
