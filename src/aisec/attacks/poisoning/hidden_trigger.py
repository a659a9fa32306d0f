"""Hidden Trigger Backdoor: clean-label poisons whose features match triggered source images.

Saha, Subramanya, Pirsiavash, "Hidden Trigger Backdoor Attacks", AAAI 2020,
https://arxiv.org/abs/1910.00033.

Poisons ``z`` start from target-class images ``t`` and keep their (correct) labels. They minimise
``||phi(z) - phi(s~)||^2`` at the penultimate layer, where ``s~`` is a source image with the trigger,
subject to ``||z - t||_inf <= eps``; every ``repair_every`` steps each poison is greedily re-paired
with the nearest still-unpaired triggered source (nearest pair first). The trigger never appears in
the training data; a victim fine-tuned on the poisons learns to map triggered sources to the target.

Linf, needs the model's module (white box). Images ``(N, C, H, W)`` in [0, 1]. All poisons are
optimised in one batch (one forward/backward per step).

>>> z = hidden_trigger(model, x_target, x_source, PatchTrigger(size=3), eps=16/255, steps=300)
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from aisec.attacks.poisoning.badnets import PoisonTask, Trigger
from aisec.core.registry import register
from aisec.core.types import Modality
from aisec.models.torch_module import feature_fn


class HiddenTriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    eps: float = Field(default=16 / 255, gt=0, le=1, description="Linf radius around each target image.")
    steps: int = Field(default=300, ge=1, description="Optimisation steps.")
    lr: float = Field(default=0.01, gt=0, description="Adam step size on the perturbation.")
    decay: float = Field(default=0.95, gt=0, le=1, description="Learning-rate decay factor.")
    decay_every: int = Field(default=100, ge=1, description="Steps between decays.")
    repair_every: int = Field(default=20, ge=1, description="Steps between greedy re-pairings.")


def greedy_pairs(fz: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
    """Greedy nearest pairing: for each of the n rows of ``fz`` an index into ``fs`` (m ≥ n), distinct.

    Takes the globally nearest unpaired (poison, source) pair first; n small steps on the device.
    """
    d = torch.cdist(fz, fs)
    n, m = d.shape
    out = torch.empty(n, dtype=torch.long, device=fz.device)
    inf = torch.tensor(float("inf"), device=fz.device, dtype=d.dtype)
    for _ in range(n):
        flat = int(torch.argmin(d))
        i, j = divmod(flat, m)
        out[i] = j
        d[i, :] = inf
        d[:, j] = inf
    return out


def hidden_trigger(
    model: nn.Module, x_target: torch.Tensor, x_source: torch.Tensor, trigger: Trigger,
    params: HiddenTriggerParams | None = None, *, seed: int = 0,
) -> torch.Tensor:
    """Poisoned versions of ``x_target`` (same labels), each within ``eps`` (Linf) of its original."""
    p = params or HiddenTriggerParams()
    g = torch.Generator().manual_seed(seed)
    phi = feature_fn(model)
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        delta = torch.zeros_like(x_target, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=p.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.decay_every, gamma=p.decay)
        target_feats: torch.Tensor | None = None
        n = x_target.shape[0]
        for step in range(p.steps):
            z = (x_target + delta).clamp(0, 1)
            fz = phi(z)
            if step % p.repair_every == 0 or target_feats is None:
                with torch.no_grad():
                    # fresh trigger positions each re-pairing when the trigger is placed at random
                    pick = torch.randperm(x_source.shape[0], generator=g)[: max(n, min(x_source.shape[0], 2 * n))]
                    fs = phi(trigger.apply(x_source[pick.to(x_source.device)], g))
                    target_feats = fs[greedy_pairs(fz.detach(), fs)]
            loss = ((fz - target_feats) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                delta.clamp_(-p.eps, p.eps)
                delta.copy_((x_target + delta).clamp(0, 1) - x_target)
        return (x_target + delta.detach()).clamp(0, 1)
    finally:
        for q in model.parameters():
            q.requires_grad_(True)


@register("poisoning", "hidden-trigger", clean_label=True, trigger="patch", default_mode="finetune",
          modalities={Modality.IMAGE}, params=HiddenTriggerParams, paper="https://arxiv.org/abs/1910.00033",
          summary="clean label: target-class poisons whose features match triggered sources (fine-tuned victims)")
def craft_hidden_trigger(task: PoisonTask) -> tuple[torch.Tensor, torch.Tensor]:
    """Random target-class candidates, perturbed by :func:`hidden_trigger`: ``(index, poisons)``."""
    idx = task.random_pick()
    if not task.count:
        return idx, task.x_train[:0]
    return idx, hidden_trigger(task.surrogate, task.x_train[idx], task.x_source, task.trigger, task.params,
                               seed=task.seed)
