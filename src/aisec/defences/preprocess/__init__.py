"""Preprocessing defences as target wrappers (issue 15, item 1).

``DefendedTarget(target, "jpeg:quality=75")`` is the model behind the defence; the model file is never
modified. The defences (registry family ``defence``; facts: differentiable, stochastic,
piecewise_constant):

========================  ===============  ==========  ========================================
name                      differentiable   stochastic  evaluated by the robustness check with
========================  ===============  ==========  ========================================
``jpeg:quality``          no (piecewise c.) no         BPDA (zero gradients) + black box
``bit-depth:bits``        no (piecewise c.) no         BPDA (zero gradients) + black box
``median:size``           no (no path)     no          BPDA (no gradient path) + black box
``tv-min:weight``         no (no path)     no          BPDA (no gradient path) + black box
``gaussian-blur:sigma``   yes              no          plain gradient attacks
``gaussian-noise:sigma``  yes              yes         EOT
========================  ===============  ==========  ========================================

See docs/defences.md for what each does and the numbers measured on it.
"""

from __future__ import annotations

# every defence module registers itself on import (the registry imports this package for family "defence")
from aisec.defences.preprocess import bit_depth, gaussian_blur, gaussian_noise, jpeg, median, tv_min
from aisec.defences.preprocess.base import (
    DefenceParams,
    DefendedTarget,
    PreprocessDefence,
    bpda_of,
    parse_defence,
    preprocess_names,
)

_MODULES = (bit_depth, gaussian_blur, gaussian_noise, jpeg, median, tv_min)

__all__ = ["DefenceParams", "DefendedTarget", "PreprocessDefence", "bpda_of", "parse_defence", "preprocess_names"]
