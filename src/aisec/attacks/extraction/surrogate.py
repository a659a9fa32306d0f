"""Knockoff / copycat-style surrogate training against a black-box target.

Orekondy et al., "Knockoff Nets: Stealing Functionality of Black-Box Models", CVPR 2019,
https://arxiv.org/abs/1812.02766; Correia-Silva et al., "Copycat CNN", IJCNN 2018,
https://arxiv.org/abs/1806.05476.

The attacker holds a pool of natural inputs (not the target's training set), spends at most
``query_budget`` queries labelling them with the target's scores (pool samples first, then
noise-jittered copies when the pool is smaller than the budget), and trains a surrogate on the
soft labels (KL divergence; copycat's hard labels with ``soft=False``). Fidelity is the agreement
of arg-max predictions on held-out inputs, with a Wilson 95% interval. A transfer attack runs
white-box PGD on the surrogate and counts how often the adversarial inputs also fool the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import Outcome, run_attack
from aisec.core.errors import ConfigError
from aisec.core.stats import Interval, wilson
from aisec.core.target import Target
from aisec.core.types import Capability
from aisec.models.zoo import SurrogateCNN, SurrogateMLP
from aisec.targets.torch import TorchTarget


def default_architecture(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A surrogate the attacker can pick without knowing the target: a small CNN for images
    ``(C, H, W)`` with H, W >= 4, else a two-layer MLP (zoo ``surrogate-cnn`` / ``surrogate-mlp``)."""
    name, kwargs = default_architecture_spec(input_shape, num_classes)
    return SurrogateCNN(**kwargs) if name == "surrogate-cnn" else SurrogateMLP(**kwargs)


def default_architecture_spec(input_shape: tuple[int, ...], num_classes: int) -> tuple[str, dict[str, int]]:
    """The zoo name and constructor arguments of :func:`default_architecture` for this input (what a saved
    surrogate records, so ``--arch`` can rebuild it)."""
    if len(input_shape) == 3 and min(input_shape[1:]) >= 4:
        return "surrogate-cnn", {"in_channels": int(input_shape[0]), "num_classes": int(num_classes)}
    return "surrogate-mlp", {"in_features": int(math.prod(input_shape)), "num_classes": int(num_classes)}


@dataclass
class Extraction:
    surrogate: TorchTarget
    queries: int
    train_samples: int


@dataclass
class FidelityResult:
    agreement: float
    interval: Interval
    n: int
    agree: torch.Tensor


@dataclass
class TransferResult:
    success_rate: float
    interval: Interval
    eligible: int
    surrogate_success_rate: float
    outcome_on_target: torch.Tensor  # per sample: fooled the target (among target-correct)
    queries: int


def extract(
    target: Target,
    pool: torch.Tensor,
    *,
    query_budget: int,
    architecture: Callable[[tuple[int, ...], int], nn.Module] | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    soft: bool = True,
    jitter: float = 0.05,
    seed: int = 0,
) -> Extraction:
    """Train a surrogate of ``target`` from at most ``query_budget`` queries on ``pool``.

    A label-only target (:attr:`~aisec.core.types.Capability.LABELS_ONLY`) always trains on hard
    labels: its one-hot rows carry no scores to distil."""
    if query_budget < 1:
        raise ConfigError(f"query_budget must be >= 1, got {query_budget}")
    spec = target.spec
    soft = soft and Capability.LABELS_ONLY not in spec.capabilities
    lo, hi = spec.value_range
    g = torch.Generator().manual_seed(seed)
    reps = math.ceil(query_budget / max(pool.shape[0], 1))
    xs = [pool]
    for _ in range(reps - 1):
        xs.append((pool + jitter * (hi - lo) * torch.randn(pool.shape, generator=g)).clamp(lo, hi))
    x_train = torch.cat(xs)[:query_budget].float()
    q0 = target.queries
    with torch.no_grad():
        soft_y = torch.cat([target.predict(x_train[i : i + 512]).cpu().float() for i in range(0, len(x_train), 512)])
    torch.manual_seed(seed)
    net = (architecture or default_architecture)(spec.input_shape, spec.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    n = x_train.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            b = perm[i : i + batch_size]
            out = net(x_train[b])
            if soft:
                loss = F.kl_div(F.log_softmax(out, 1), soft_y[b], reduction="batchmean")
            else:
                loss = F.cross_entropy(out, soft_y[b].argmax(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    sur = TorchTarget(net, input_shape=spec.input_shape, num_classes=spec.num_classes, name=f"surrogate-of-{spec.name}",
                      modality=spec.modality, value_range=spec.value_range, device="cpu")
    return Extraction(surrogate=sur, queries=target.queries - q0, train_samples=n)


def fidelity(surrogate: Target, target: Target, x: torch.Tensor) -> FidelityResult:
    """Arg-max agreement of surrogate and target on ``x`` (costs ``len(x)`` target queries)."""
    with torch.no_grad():
        a = surrogate.predict(x).argmax(1).cpu()
        b = target.predict(x).argmax(1).cpu()
    agree = a == b
    k, n = int(agree.sum()), int(agree.numel())
    return FidelityResult(k / n if n else 0.0, wilson(k, n), n, agree)


def surrogate_transfer(
    surrogate: Target,
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str = "pgd",
    params: dict[str, object] | None = None,
    seed: int = 0,
) -> TransferResult:
    """White-box ``attack`` (any registered one) on an extracted surrogate, replayed on the target (2 target
    queries per sample), as the extraction check reports it.

    Transfer success = the target is fooled, among samples the target classifies correctly. (The evasion
    attack ``transfer``, :func:`aisec.attacks.evasion.transfer.transfer_attack`, is the robustness check's
    PGD-on-a-surrogate attack, scored as an :class:`~aisec.attacks.base.Outcome` of the victim.)
    """
    out: Outcome = run_attack(attack, surrogate, x, y, params or {}, seed=seed)
    q0 = target.queries
    with torch.no_grad():
        clean = target.predict(x).argmax(1).cpu()
        adv = target.predict(out.x_adv).argmax(1).cpu()
    yc = y.cpu()
    ok = clean == yc
    fooled = ok & (adv != yc)
    k, n = int(fooled.sum()), int(ok.sum())
    return TransferResult(
        success_rate=k / n if n else 0.0, interval=wilson(k, n), eligible=n,
        surrogate_success_rate=float(out.success.float().mean()) if len(out.success) else 0.0,
        outcome_on_target=fooled, queries=target.queries - q0,
    )
