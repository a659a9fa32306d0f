"""Two digits models for the privacy demo: one that memorises, one that generalises.

- ``digits-cnn-overfit``: :class:`~aisec.models.zoo.DigitsCNN` trained for 60 epochs in batches of
  20, no weight decay, on only the first 200 records of the digits train split — it reaches 100%
  training accuracy (about 90% on the test split) and leaks membership visibly.
- ``digits-cnn-regularised``: the same architecture on the whole train split (1,258 records) for
  20 epochs with weight decay — train and test accuracy are close and leakage is small.

Both are trained in seconds on a CPU and cached as safetensors next to the demo model
(:func:`aisec.models.train.cache_dir`). Each comes with its members, its non-members (the digits
test split, never seen by either model) and the :class:`~aisec.models.recipe.TrainingRecipe` that
trained it, which the privacy check needs for shadow and reference models.

``aisec demo`` assesses both by default with :data:`QUICK` settings (threshold attacks sharing one
forward pass, LiRA online/offline and RMIA on 4 shared reference models, SHAPr, at most 250 members
and 250 non-members), which adds a few seconds once the two models are cached; ``quick=False``
runs every attack with the check's default model counts (minutes on a CPU).

>>> demo = privacy_demo_model("overfit")
>>> run = assess(demo.target(), demo.members, checks={"privacy": demo.check_params(**QUICK)})
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from aisec.core.dataset import TensorDataset
from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.models.recipe import TrainingRecipe
from aisec.models.train import cache_dir

if TYPE_CHECKING:
    from aisec.core.run import Run

OVERFIT_MEMBERS = 200

QUICK: dict[str, Any] = {
    "attacks": [
        {"name": "loss"}, {"name": "confidence", "params": {"statistic": "mentr"}}, {"name": "gap"},
        # Few reference models: one pooled variance is the paper's advice below ~64 models.
        {"name": "lira", "params": {"fixed_variance": True}}, {"name": "lira", "params": {"online": False}},
        {"name": "rmia"},
    ],
    "reference_models": 4,
    "samples": 250,
}
"""Cheap privacy-check settings for the default demo: the reference models (the only training)
are trained once, batched, and shared by LiRA and RMIA; 250 non-members resolve TPR at 1% FPR."""

RECIPES: dict[str, TrainingRecipe] = {
    "overfit": TrainingRecipe(architecture="digits-cnn", epochs=60, batch_size=20, lr=1e-3, weight_decay=0.0),
    "regularised": TrainingRecipe(architecture="digits-cnn", optimizer="adamw", epochs=20, batch_size=64,
                                  lr=1e-3, weight_decay=0.05),
}


@dataclass
class PrivacyDemo:
    """A demo model with the data and recipe the privacy check needs."""

    name: str
    model: nn.Module
    recipe: TrainingRecipe
    members: TensorDataset
    nonmembers: TensorDataset

    def target(self, device: str | None = "cpu") -> Any:
        from aisec.targets.torch import TorchTarget

        return TorchTarget(self.model, input_shape=(1, 8, 8), num_classes=10, name=self.name,
                           class_names=self.members.info.classes, device=device)

    def check_params(self, **overrides: Any) -> dict[str, Any]:
        """Privacy-check parameters for this demo (non-members given explicitly)."""
        return {"recipe": self.recipe, "nonmembers": self.nonmembers, **overrides}


def demo_members(kind: Literal["overfit", "regularised"]) -> TensorDataset:
    from aisec.data.builtin import digits

    train = digits(split="train")
    if kind == "overfit":
        return train.subset(list(range(OVERFIT_MEMBERS)), name=f"digits-train[:{OVERFIT_MEMBERS}]")
    return train


def privacy_demo_model(kind: Literal["overfit", "regularised"], *, cache: bool = True) -> PrivacyDemo:
    """The over-fitted or the regularised digits model, trained once and cached."""
    from safetensors.torch import load_file, save_file

    from aisec.data.builtin import digits

    if kind not in RECIPES:
        raise ConfigError(f"privacy demo model must be 'overfit' or 'regularised', got '{kind}'")
    recipe = RECIPES[kind]
    members = demo_members(kind)
    name = f"digits-cnn-{kind}"
    key = hashlib.sha256(
        f"{name}-v1-{recipe.model_dump_json()}-{members.info.digest}-{torch.__version__}".encode()
    ).hexdigest()[:16]
    path = cache_dir() / f"{name}-{key}.safetensors"
    model: nn.Module | None = None
    if cache and path.exists():
        try:
            torch.manual_seed(recipe.seed)
            model = recipe.build(members.x[:1], 10)
            model.load_state_dict(load_file(str(path)))
            model.eval()
        except Exception:  # a corrupt cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
            model = None
    if model is None:
        model = recipe.train(members.x, members.y, num_classes=10, device="cpu")
        if cache:
            tmp = path.with_suffix(".tmp")
            save_file(model.state_dict(), str(tmp))
            tmp.replace(path)
    for p in model.parameters():
        p.requires_grad_(False)
    return PrivacyDemo(name=name, model=model, recipe=recipe, members=members,
                       nonmembers=digits(split="test"))


def privacy_demo_models() -> list[PrivacyDemo]:
    """Both demo models, over-fitted first."""
    return [privacy_demo_model("overfit"), privacy_demo_model("regularised")]


def privacy_demo_runs(
    out: str | Path | None, *, quick: bool = True, seed: int = 0, reference_models: int | None = None,
    progress: Progress = no_progress,
) -> list[Run]:
    """Assess both demo models (over-fitted first), each written under ``out/<model name>``."""
    from aisec.api import assess

    runs = []
    for demo in privacy_demo_models():
        params = dict(QUICK) if quick else {}
        if reference_models is not None:
            params["reference_models"] = reference_models
        runs.append(assess(
            demo.target(), demo.members, checks={"privacy": demo.check_params(**params)}, seed=seed,
            out=None if out is None else Path(out) / demo.name, progress=progress, existing="overwrite",
        ))
    return runs
