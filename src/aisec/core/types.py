"""Small enumerations shared by targets, datasets, attacks and evidence."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """What kind of input a model takes."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


class Access(StrEnum):
    """How much of the model the assessor can see.

    white: weights and gradients; grey: logits or probabilities but no gradients (e.g. ONNX);
    black: only what a query returns (probabilities or labels), usually with a budget.
    """

    WHITE = "white"
    GREY = "grey"
    BLACK = "black"


class OutputKind(StrEnum):
    """What the model's raw output is."""

    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LABELS = "labels"


class Capability(StrEnum):
    """What a target offers to attacks; attacks declare which of these they require."""

    GRADIENTS = "gradients"
    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LABELS_ONLY = "labels_only"
    EMBEDDINGS = "embeddings"
    QUERY_BUDGET = "query_budget"


class Norm(StrEnum):
    """Perturbation budgets: the Lp norms of ``x_adv - x``, and the Wasserstein distance.

    ``wasserstein`` is not a norm of the difference: it measures how far the image's mass (its pixel
    values) moves, so it depends on ``x`` and ``x_adv`` both (see :attr:`is_lp`). Attacks in that
    ball keep to it themselves and measure it (:mod:`aisec.attacks.evasion.wasserstein`).
    """

    L0 = "l0"
    L1 = "l1"
    L2 = "l2"
    LINF = "linf"
    WASSERSTEIN = "wasserstein"

    @property
    def is_lp(self) -> bool:
        """Whether the budget is a norm of ``x_adv - x`` (the driver can project onto it and measure it)."""
        return self is not Norm.WASSERSTEIN

    @property
    def dual(self) -> Norm:
        """The dual norm q with 1/p + 1/q = 1 (used for gradient norms, e.g. in CLEVER); Lp norms only."""
        duals = {Norm.L1: Norm.LINF, Norm.L2: Norm.L2, Norm.LINF: Norm.L1, Norm.L0: Norm.LINF}
        if self not in duals:
            raise ValueError(f"'{self.value}' is not an Lp norm and has no dual norm")
        return duals[self]


#: The conventional RobustBench budgets for inputs in [0, 1], per norm: the eps at which robustness is read
#: for a verdict (:class:`aisec.policy.properties.Reference`'s default) and which the robustness check
#: therefore always measures (it adds each to the grid of its norm).
REFERENCE_EPS: dict[str, float] = {"linf": 8 / 255, "l2": 0.5}
