"""Is the model any good on this data? A run-level sanity rule on every measured clean accuracy.

A robustness report for a model that is wrong on the clean inputs says nothing: robust accuracy
cannot exceed clean accuracy, and "attack success" on a model that guesses is noise. A model meets
that fate when it is paired with the wrong data (LeNet5 trained on MNIST, evaluated on
Fashion-MNIST) or fed inputs in the wrong units (a table scaled when the model wants raw features).
So every check that measures clean accuracy gets a run-level record
:data:`SKILL_METRIC`, the accuracy's margin over chance, normalised (Cohen's kappa against a
constant guess):

    skill = (accuracy - chance) / (1 - chance),   chance = max(1 / K, majority-class share)

0 is chance, 1 is perfect, and a negative skill is worse than always answering the most common
class. ``chance`` uses the majority share of the evaluated labels, not just ``1 / K``. On an
imbalanced table (breast-cancer: 63 % benign) a constant answer already scores 0.63. Below
:data:`MIN_SKILL` the run carries a warning at the top of the console and report
(:func:`alerts`). The default policy fails the run on :func:`aisec.policy.rules.sanity_rule`,
a rule that ``defaults: none`` or an explicit rule on the same metric replaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from aisec.core.evidence import Evidence

#: The run-level metric: clean accuracy's normalised margin over chance (see the module docstring).
SKILL_METRIC = "model.accuracy_above_chance"
#: Below this skill, clean accuracy is "near chance": the run warns and the default policy fails.
#: 0.1 lets through any model that recovers a tenth of the way from a constant guess to perfect.
MIN_SKILL = 0.1


def accuracy_skill(accuracy: float, chance: float) -> float:
    """``(accuracy - chance) / (1 - chance)``; a chance of 1 (a single class) gives 0."""
    return (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def alerts(evidence: Sequence[Evidence]) -> list[str]:
    """One warning per check whose clean accuracy is near or below chance, for the top of the report."""
    out = []
    for e in evidence:
        if e.metric != SKILL_METRIC or e.value >= MIN_SKILL:
            continue
        p = e.parameters
        out.append(
            f"{e.check}: clean accuracy {p.get('clean_accuracy', float('nan')):.3f} is near or below chance "
            f"({p.get('chance', float('nan')):.3f}: {p.get('chance_basis', 'chance level')}; skill {e.value:.3f} "
            f"< {MIN_SKILL:g}). The model does not work on this data, so its security figures describe noise: "
            "check that model and data belong together, the input scaling (--scale, --mean/--std) and the labels"
        )
    return out


__all__ = ["MIN_SKILL", "SKILL_METRIC", "accuracy_skill", "alerts"]
