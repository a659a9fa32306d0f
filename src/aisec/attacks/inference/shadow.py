"""Shadow-model membership inference: learn what membership looks like on models you trained.

Shokri, Stronati, Song & Shmatikov, "Membership Inference Attacks Against Machine Learning Models",
IEEE S&P 2017, https://arxiv.org/abs/1610.05820

K shadow models are trained with the target's recipe on *shadow data disjoint from the target's
training set* (the task's ``population``), each on a random half of it (every shadow record IN for
exactly K/2 models; trained batched with ``torch.vmap``). An attack classifier learns IN vs OUT
from the shadow models' outputs on their shadow records and is then applied to the target's
outputs on the candidates. Features per record: the logit-scaled true-class confidence, the
true-class log-probability, the top-3 probabilities, the entropy, whether the prediction is correct
and the one-hot label (which stands in for Shokri's one attack model per class).

Needs: probabilities, a training recipe and population data.

>>> scores = ShadowModels().run(task, ShadowModels.Params(attack_model="gb"))
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.inference.base import (
    MembershipScores,
    MembershipTask,
    balanced_halves,
    logit_confidence,
    register_inference_attack,
    true_class,
)
from aisec.core.errors import ConfigError
from aisec.core.types import Capability


def attack_features(lp: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Attack-classifier features from log-probabilities ``(..., N, C)`` → ``(..., N, F)``."""
    p = lp.exp()
    top = torch.topk(p, k=min(3, p.shape[-1]), dim=-1).values
    ent = -(p * lp.clamp_min(-1e4)).sum(-1, keepdim=True)
    yb = y.expand(*lp.shape[:-1])
    correct = (lp.argmax(-1) == yb).double().unsqueeze(-1)
    onehot = torch.nn.functional.one_hot(yb, num_classes).double()
    return torch.cat([
        logit_confidence(lp, y).unsqueeze(-1), true_class(lp, y).clamp_min(-1e4).unsqueeze(-1),
        top, ent, correct, onehot,
    ], dim=-1)


def make_attack_model(kind: str, seed: int) -> Any:
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)


@register_inference_attack("shadow", requires={Capability.PROBABILITIES}, needs_recipe=True,
                           paper="https://arxiv.org/abs/1610.05820")
class ShadowModels:
    """Shadow models (Shokri et al. 2017): an attack classifier trained on shadow models' outputs."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        attack_model: Literal["gb", "rf", "logreg"] = Field(
            default="gb", description="Attack classifier: histogram gradient boosting, random forest, logistic."
        )

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        recipe = task.need_recipe("the shadow-model attack")
        if task.population is None:
            raise ConfigError("the shadow-model attack needs population data disjoint from the members")
        xp, yp = task.population
        k = task.shadow_models
        if xp.shape[0] < 4:
            raise ConfigError(f"the shadow-model attack needs at least 4 population records, got {xp.shape[0]}")
        keep = balanced_halves(k, xp.shape[0], seed=task.seed + 104729)
        t0 = time.perf_counter()
        stack = recipe.train_many(
            xp, yp, keep, num_classes=task.num_classes, seed=recipe.seed + 2000,
            device=task.target.spec.device, progress=task.progress, task=f"training {k} shadow models",
        )
        lp = torch.log_softmax(stack.logits(xp, batch_size=task.batch_size * 4).double(), -1)  # (K, P, C)
        t1 = time.perf_counter()
        feats = attack_features(lp, yp, task.num_classes).reshape(-1, self._nf(task))
        labels = keep.reshape(-1).numpy().astype(np.int64)
        clf = make_attack_model(params.attack_model, task.seed)
        clf.fit(feats.numpy(), labels)
        lp_in, lp_out = task.target_log_probs()
        s_in = clf.predict_proba(attack_features(lp_in, task.y_in, task.num_classes).numpy())[:, 1]
        s_out = clf.predict_proba(attack_features(lp_out, task.y_out, task.num_classes).numpy())[:, 1]
        shadow_in = lp.argmax(-1) == yp
        return MembershipScores(
            torch.from_numpy(s_in), torch.from_numpy(s_out),
            info={"shadow_models": k, "population": int(xp.shape[0]), "attack_model": params.attack_model,
                  "shadow_train_accuracy": float(shadow_in[keep].float().mean()),
                  "shadow_test_accuracy": float(shadow_in[~keep].float().mean()),
                  "shadow_training_seconds": t1 - t0, "attack_model_seconds": time.perf_counter() - t1},
        )

    @staticmethod
    def _nf(task: MembershipTask) -> int:
        return 2 + min(3, task.num_classes) + 2 + task.num_classes
