"""BPDA: differentiate through a non-differentiable preprocessing with an approximation of it.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security: Circumventing
Defenses to Adversarial Examples", ICML 2018, https://arxiv.org/abs/1802.00420, section 4.1.

A defended model ``f(x) = g(h(x))`` puts a preprocessing ``h`` (bit-depth reduction, binarisation,
JPEG, ...) in front of a classifier ``g``. ``h`` is piecewise constant, so ``df/dx = 0`` almost
everywhere and every gradient attack on ``f`` stalls: robustness that only *looks* high. BPDA runs
``h`` exactly in the forward pass and replaces it by a differentiable ``a ~ h`` in the backward
pass: the gradient is ``dg/dx|_{h(x)} * da/dx``. With ``a`` the identity (the default, the
straight-through estimator) that is the classifier's gradient at the preprocessed input.

:class:`BPDATarget` wraps the *classifier* ``g`` (a white-box target) and the preprocessing, so
its forward pass — ``logits`` and ``predict`` — is the defended model ``f`` itself, value for
value, and any gradient attack run on it (``run_attack("pgd", BPDATarget(g, "bit-depth:4"), ...)``)
is the BPDA attack on ``f``, scored on ``f``'s own predictions.

>>> bpda = BPDATarget(classifier, "bit-depth:4")            # straight-through
>>> bpda = BPDATarget(classifier, my_jpeg, approx=lambda x: x)  # a user-given approximation
>>> run_attack("pgd", bpda, x, y, {"eps": 0.1}).robust.float().mean()
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from aisec.attacks.adaptive.preprocess import Preprocessing, preprocessing
from aisec.core.errors import ConfigError
from aisec.core.target import Target, WrappedTarget
from aisec.core.types import Capability

#: A preprocessing given by hand: ``x -> h(x)`` (the value range is the caller's business).
Function = Callable[[torch.Tensor], torch.Tensor]


class BPDATarget(WrappedTarget):
    """A white-box target ``g`` behind a non-differentiable preprocessing ``h``, with BPDA gradients.

    Args:
        target: the classifier ``g`` after the preprocessing; needs gradients.
        preprocess: ``h``: a registered name (``"bit-depth:4"``, ``"threshold:0.5"``,
            ``"jpeg-like:75"``; see :mod:`aisec.attacks.adaptive.preprocess`) or a function
            ``x -> x'`` of the same shape.
        approx: the differentiable approximation ``a`` used in the backward pass (``x -> x'``);
            None is the identity (straight-through).

    ``queries`` are those of ``target``; the spec is ``target``'s, renamed ``bpda(<h>)-<name>``.
    """

    def __init__(self, target: Target, preprocess: str | Function, approx: Function | None = None) -> None:
        if Capability.GRADIENTS not in target.spec.capabilities:
            raise ConfigError(f"BPDA needs a white-box classifier behind the preprocessing; target "
                              f"'{target.spec.name}' offers no gradients")
        self.approx = approx
        if isinstance(preprocess, str):
            label, self._h = preprocess, _bound(preprocessing(preprocess), target.spec.value_range)
        else:
            label, self._h = getattr(preprocess, "__name__", type(preprocess).__name__), preprocess
        super().__init__(target, f"bpda({label})-{target.spec.name}")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x)``, the exact preprocessing (no gradient)."""
        with torch.no_grad():
            out = self._h(x.detach())
        if out.shape != x.shape:
            raise ConfigError(f"the preprocessing changed the input shape {tuple(x.shape)} to {tuple(out.shape)}")
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``g(h(x))`` in value; its gradient flows through ``approx`` (identity by default)."""
        hx = self.preprocess(x)
        if not x.requires_grad:
            return self.target.logits(hx)
        a = x if self.approx is None else self.approx(x)
        # Forward: h(x) exactly. Backward: d a / dx (straight-through when a is the identity).
        return self.target.logits(a + (hx - a).detach())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The defended model's probabilities ``softmax(g(h(x)))``."""
        return self.target.predict(self.preprocess(x))


def _bound(pre: Preprocessing, value_range: tuple[float, float]) -> Function:
    def h(x: torch.Tensor) -> torch.Tensor:
        return pre(x, value_range)

    return h
