"""Loss-threshold membership inference: members have lower loss.

Yeom, Giacomelli, Fredrikson & Jha, "Privacy Risk in Machine Learning: Analyzing the Connection to
Overfitting", CSF 2018, https://arxiv.org/abs/1709.01604

Score: −ℓ(f(x), y) = log f(x)_y, the negative cross-entropy of the true label (higher = member).
Needs: probabilities (or logits). Shapes: any input the target takes; labels ``(N,)``.

>>> scores = Loss().run(task, Loss.Params())
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from aisec.attacks.inference.base import MembershipScores, MembershipTask, register_inference_attack, true_class
from aisec.core.types import Capability


@register_inference_attack("loss", requires={Capability.PROBABILITIES}, paper="https://arxiv.org/abs/1709.01604")
class Loss:
    """Loss threshold (Yeom et al. 2018): score = log-probability of the true label."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        lp_in, lp_out = task.target_log_probs()
        return MembershipScores(true_class(lp_in, task.y_in), true_class(lp_out, task.y_out))
