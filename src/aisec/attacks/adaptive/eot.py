"""EOT: attack a randomised model through the expectation over its random transformations.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018,
https://arxiv.org/abs/1802.00420, section 4.3 (and Athalye et al., "Synthesizing Robust
Adversarial Examples", https://arxiv.org/abs/1707.07397).

A randomised defence (input noise, random resize and pad, dropout at test time) answers each query
with a fresh draw, so the gradient of one forward pass is the gradient of one random model: a
gradient attack follows noise and reports robustness that is not there. EOT replaces the one
draw by the average of ``draws`` independent forwards. :class:`EOTTarget` does it once for every
attack: its ``logits(x)`` is the mean of ``draws`` stochastic ``logits`` of the wrapped target, so
the gradient any white-box attack computes on it is the Monte-Carlo EOT gradient of that mean
(for losses linear in the logits, e.g. the C&W margin of a fixed pair of classes, exactly the
mean of the per-draw gradients; torchattacks' ``EOTPGD`` averages per-draw cross-entropy
gradients instead, which the reference test compares within three SE). ``average="probs"``
averages the softmax instead and returns its log, the log of the expected prediction.

Randomness, honestly: ``predict`` is *not* averaged unless asked. It is one forward of the wrapped
target (``predict_draws=1``), i.e. what a user of the deployed randomised model gets, so an attack
run through :func:`~aisec.attacks.base.run_attack` is scored against the real, random model; the
score is itself a random variable (reproducible under run_attack's seed). ``predict_draws=k > 1``
returns the mean of k draws' probabilities — the expected prediction, which is a different (smoothed)
classifier; say so when reporting it. Every draw counts as a query of the wrapped target.

>>> eot = EOTTarget(randomised_target, draws=16)
>>> out = run_attack("pgd", eot, x, y, {"eps": 0.1, "steps": 20})
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from aisec.core.errors import ConfigError
from aisec.core.target import Target, WrappedTarget
from aisec.core.types import Capability


class EOTTarget(WrappedTarget):
    """A target whose ``logits`` average ``draws`` stochastic forwards of ``target`` (EOT).

    Args:
        target: the randomised model; needs gradients for gradient attacks (a black-box target
            works too: score-based attacks then see the averaged scores through ``logits``).
        draws: forwards averaged per ``logits`` call (N in the paper; 10-30 is usual).
        average: ``logits`` (mean of the logits) or ``probs`` (log of the mean softmax).
        predict_draws: forwards averaged by ``predict``; 1 = the deployed model's own answer.
    """

    def __init__(
        self,
        target: Target,
        draws: int = 16,
        *,
        average: Literal["logits", "probs"] = "logits",
        predict_draws: int = 1,
    ) -> None:
        if draws < 1 or predict_draws < 1:
            raise ConfigError(f"EOT needs draws >= 1 and predict_draws >= 1, got {draws} and {predict_draws}")
        if average not in ("logits", "probs"):
            raise ConfigError(f"EOT average must be 'logits' or 'probs', got '{average}'")
        super().__init__(target, f"eot{draws}-{target.spec.name}")
        self.draws = draws
        self.average = average
        self.predict_draws = predict_draws

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of ``draws`` stochastic logits (or log of the mean softmax); differentiable if the
        wrapped target is."""
        if Capability.GRADIENTS in self.target.spec.capabilities:
            zs = [self.target.logits(x) for _ in range(self.draws)]
        else:
            zs = [self.target.predict(x).clamp_min(1e-12).log() for _ in range(self.draws)]
        z = torch.stack(zs).float()
        if self.average == "probs":
            return torch.logsumexp(torch.log_softmax(z, dim=2), dim=0) - math.log(self.draws)
        return z.mean(0)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """One forward of the randomised model (``predict_draws=1``), else the mean of that many draws'
        probabilities (the expected prediction)."""
        with torch.no_grad():
            if self.predict_draws == 1:
                return self.target.predict(x)
            return torch.stack([self.target.predict(x) for _ in range(self.predict_draws)]).mean(0)


def is_randomised(target: Target, x: torch.Tensor, *, tries: int = 2, atol: float = 1e-6) -> bool:
    """Whether ``target`` answers the same inputs differently across ``tries`` forwards (costs
    ``tries * len(x)`` queries): the sign that an attack on it needs EOT."""
    with torch.no_grad():
        first = target.predict(x)
        return any(not torch.allclose(target.predict(x), first, atol=atol, rtol=0) for _ in range(tries - 1))
