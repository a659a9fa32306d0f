"""Gap attack: a record is called a member when the model classifies it correctly.

Yeom, Giacomelli, Fredrikson & Jha, CSF 2018, https://arxiv.org/abs/1709.01604 (the baseline of
Choquette-Choo et al., "Label-Only Membership Inference Attacks", ICML 2021). Its balanced accuracy
is ½ + ½(train accuracy − test accuracy): the generalisation gap.

Needs: predicted labels only. Score ∈ {0, 1}.

>>> scores = Gap().run(task, Gap.Params())
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from aisec.attacks.inference.base import MembershipScores, MembershipTask, register_inference_attack


@register_inference_attack("gap", labels_only=True, paper="https://arxiv.org/abs/1709.01604")
class Gap:
    """Gap attack (label only): score = 1 if the target's label is correct, else 0."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        pred_in, pred_out = task.target_predictions()  # shared with the other attacks and the accuracies
        s_in = (pred_in == task.y_in).double()
        s_out = (pred_out == task.y_out).double()
        return MembershipScores(s_in, s_out)
