"""Transfer attack: craft on a white-box surrogate, replay on the victim (predictions only).

Papernot, McDaniel & Goodfellow, "Transferability in Machine Learning: from Phenomena to Black-Box
Attacks using Adversarial Samples", 2016, https://arxiv.org/abs/1605.07277; as an adaptive attack
against masked gradients, Athalye, Carlini & Wagner 2018 (https://arxiv.org/abs/1802.00420) and
Tramer et al. 2020 (https://arxiv.org/abs/2002.08347): a defence that hides its gradients (a
saturated or piecewise-constant output) does not hide its decision boundary, which a surrogate
trained for the same task shares closely enough for PGD examples to carry over.

The victim is only queried for predictions, so the attack needs no capability: the driver's two
scoring passes plus, when the surrogate is extracted, the labelling queries (``max_queries`` per
sample), all counted in ``Outcome.queries``. The surrogate is, in order:

1. the one bound with :func:`using_surrogate` (a target or a torch module), as
   :func:`transfer_attack` does;
2. ``surrogate``: a model reference as :func:`aisec.targets.loading.load_target` accepts (a
   TorchScript file, or a weights file with ``surrogate_arch``), loaded with the victim's input
   shape, classes and value range;
3. none: a surrogate extracted from the victim's answers (:func:`aisec.attacks.extraction.surrogate.extract`,
   Knockoff-style, soft labels when the victim gives scores) on the attacked batch and
   ``max_queries - 1`` noise-jittered copies of each sample, trained for ``epochs``; one per batch.

Crafting is PGD (:func:`aisec.attacks.evasion.pgd.pgd_loop`) on the surrogate with this attack's
``eps``, ``norm``, ``steps``, ``step_size``, ``random_start`` and ``loss``; the examples are then
projected and scored on the victim by the driver. ``Outcome.loss_trace`` holds the surrogate's margin.

>>> out = run_attack("transfer", victim, x, y, {"eps": 0.1, "surrogate": "surrogate.pt"})
>>> out = transfer_attack(victim, my_module, x, y, eps=0.1, steps=20)
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from pydantic import Field
from torch import nn

from aisec.attacks.base import Outcome, run_attack
from aisec.attacks.evasion.pgd import PGDParams, pgd_loop
from aisec.core.errors import ConfigError
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Capability, Norm

_BOUND: contextvars.ContextVar[Target | nn.Module | None] = contextvars.ContextVar("aisec_surrogate", default=None)


class TransferParams(PGDParams):
    steps: int = Field(default=20, ge=1, description="PGD steps on the surrogate.")
    surrogate: str | None = Field(
        default=None, description="Model reference of the surrogate (as load_target accepts); none: extract one."
    )
    surrogate_arch: str | None = Field(default=None, description="Architecture for a surrogate weights file.")
    max_queries: int = Field(
        default=10, ge=1, le=10_000, description="Victim queries per sample spent labelling an extracted surrogate."
    )
    epochs: int = Field(default=20, ge=1, le=1000, description="Training epochs of an extracted surrogate.")
    candidates: int = Field(
        default=1, ge=1, le=100, description="Untargeted runs: examples tried on the victim per sample (the "
        "untargeted one, then one targeted at each next most likely class of the surrogate), one query each; the "
        "first that fools the victim is kept.")


@contextmanager
def using_surrogate(surrogate: Target | nn.Module) -> Iterator[None]:
    """Within the block, the ``transfer`` attack crafts on ``surrogate`` (a white-box target or a
    torch module mapping inputs in the victim's value range to logits)."""
    token = _BOUND.set(surrogate)
    try:
        yield
    finally:
        _BOUND.reset(token)


@register_attack(
    "transfer",
    requires=frozenset(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1605.07277",
    iterative=True,
    surrogate=True,
)
class Transfer:
    """Transfer attack: PGD on a white-box surrogate (given or extracted), replayed on the victim."""

    Params = TransferParams

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str | None], Target] = {}

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: TransferParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sur = self._surrogate(target, x, params)
        dev = torch.device(sur.spec.device)
        tl = target_labels.to(dev) if target_labels is not None else None
        xd, yd = x.to(dev), y.to(dev)
        x_adv = pgd_loop(sur, xd, yd, params, tl, start=params.random_start)
        if params.candidates > 1 and target_labels is None:
            x_adv = _more_candidates(target, sur, xd, yd, x_adv, params)
        return x_adv.to(x.device)

    def _surrogate(self, victim: Target, x: torch.Tensor, params: TransferParams) -> Target:
        bound = _BOUND.get()
        if bound is not None and params.surrogate is not None:
            raise ConfigError("the transfer attack was given two surrogates (a bound one and "
                              f"surrogate='{params.surrogate}'); give one")
        if bound is not None:
            return _check(_as_target(bound, victim), victim)
        if params.surrogate is not None:
            key = (params.surrogate, params.surrogate_arch)
            if key not in self._loaded:
                from aisec.targets.loading import load_target

                spec = victim.spec
                self._loaded[key] = _check(load_target(
                    params.surrogate, arch=params.surrogate_arch, input_shape=spec.input_shape,
                    num_classes=spec.num_classes, value_range=spec.value_range, modality=spec.modality,
                    device=spec.device, name=f"surrogate-{params.surrogate}"), victim)
            return self._loaded[key]
        from aisec.attacks.extraction.surrogate import extract

        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # follows run_attack's seed
        ext = extract(victim, x.detach().cpu().float(), query_budget=params.max_queries * int(x.shape[0]),
                      epochs=params.epochs, seed=seed)
        return ext.surrogate


def _more_candidates(victim: Target, sur: Target, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                     params: TransferParams) -> torch.Tensor:
    """Where the untargeted example does not fool the victim, targeted ones at the surrogate's next most likely
    classes, each checked with one victim query (the label-only analogue of APGD-T's target sweep: a boundary the
    surrogate misplaces in one direction is often right in another)."""
    vdev = torch.device(victim.spec.device)
    with torch.no_grad():
        fooled = victim.predict(x_adv.to(vdev)).argmax(1).to(y.device) != y
        rank = sur.predict(x).argsort(1, descending=True)
    others = rank[rank != y[:, None]].view(len(y), -1)  # every class but the true one, surrogate's order
    x_adv = x_adv.clone()
    for k in range(min(params.candidates - 1, others.shape[1])):
        idx = torch.nonzero(~fooled).flatten()
        if idx.numel() == 0:
            break
        cand = pgd_loop(sur, x[idx], y[idx], params, others[idx, k], start=params.random_start)
        with torch.no_grad():
            hit = victim.predict(cand.to(vdev)).argmax(1).to(y.device) != y[idx]
        x_adv[idx[hit]] = cand[hit]
        fooled[idx[hit]] = True
    return x_adv


def _as_target(surrogate: Target | nn.Module, victim: Target) -> Target:
    if isinstance(surrogate, nn.Module):
        from aisec.targets.torch import TorchTarget

        spec = victim.spec
        return TorchTarget(surrogate, input_shape=spec.input_shape, num_classes=spec.num_classes,
                           value_range=spec.value_range, modality=spec.modality, name="surrogate",
                           device=spec.device)
    return surrogate


def _check(sur: Target, victim: Target) -> Target:
    s, v = sur.spec, victim.spec
    if Capability.GRADIENTS not in s.capabilities:
        raise ConfigError(f"the transfer surrogate '{s.name}' must be white box (gradients); it offers "
                          f"{sorted(c.value for c in s.capabilities)}")
    if (s.input_shape, s.num_classes) != (v.input_shape, v.num_classes):
        raise ConfigError(f"the transfer surrogate '{s.name}' takes {s.input_shape} -> {s.num_classes} classes but "
                          f"the victim '{v.name}' takes {v.input_shape} -> {v.num_classes}")
    if tuple(s.value_range) != tuple(v.value_range):
        raise ConfigError(f"the transfer surrogate '{s.name}' has value range {s.value_range}, the victim "
                          f"{v.value_range}; they must agree")
    return sur


def transfer_attack(
    victim: Target,
    surrogate: Target | nn.Module | str | None,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target_labels: torch.Tensor | None = None,
    seed: int | None = 0,
    batch_size: int = 256,
    **params: Any,
) -> Outcome:
    """Craft PGD examples on ``surrogate`` and score them on ``victim`` (an :class:`Outcome` of the victim).

    ``surrogate``: a white-box target, a torch module, a model reference (``load_target``), or
    None to extract one from the victim's answers. ``params`` are :class:`TransferParams` fields
    (``eps``, ``norm``, ``steps``, ``loss``, ...). ``Outcome.queries`` counts the victim's queries only.
    """
    if surrogate is None or isinstance(surrogate, str):
        return run_attack("transfer", victim, x, y, {**params, "surrogate": surrogate}, target_labels=target_labels,
                          seed=seed, batch_size=batch_size)
    with using_surrogate(surrogate):
        return run_attack("transfer", victim, x, y, params, target_labels=target_labels, seed=seed,
                          batch_size=batch_size)
