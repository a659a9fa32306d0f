"""Detectors that reject adversarial inputs in front of a classifier (issue 15, item 3).

- :mod:`~aisec.defences.detect.squeezing` — feature-squeezing disagreement (Xu et al. 2018): the L1
  distance between the softmax on ``x`` and on its bit-depth-reduced and median-smoothed copies;
- :mod:`~aisec.defences.detect.activation` — a logistic regression on the model's penultimate
  activations, trained on clean vs PGD inputs;
- :mod:`~aisec.defences.detect.metrics` — rejection ROC with DeLong's interval, precision / recall / F1;
- :mod:`~aisec.defences.detect.adaptive` — the adaptive attack on classifier and detector together.

Both detectors are registered in the family ``rejector``; the ``detection`` check evaluates them
(``aisec assess -t detection --detector feature-squeezing``), and :class:`GuardedTarget` is a model
behind a fitted detector. See docs/defences.md for how a rejection counts in robust accuracy.
"""

from __future__ import annotations

# every detector module registers itself on import (the registry imports this package for family "rejector")
from aisec.defences.detect import activation, squeezing
from aisec.defences.detect.adaptive import AdaptiveOutcome, adaptive_pgd
from aisec.defences.detect.base import DetectorParams, GuardedTarget, InputDetector, detector_names, parse_detector

_MODULES = (activation, squeezing)

__all__ = ["AdaptiveOutcome", "DetectorParams", "GuardedTarget", "InputDetector", "adaptive_pgd", "detector_names",
           "parse_detector"]
