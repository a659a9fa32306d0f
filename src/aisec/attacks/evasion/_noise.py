"""The repeated additive-noise loop shared by ``gaussian-noise`` and ``uniform-noise``.

Each draw is one query per still-unbroken sample: ``x + eps * u`` clipped to the value range,
where ``u`` is a fresh noise sample normalised to unit ``norm`` (so the perturbation lies on the
sphere of radius ``eps`` before clipping, and clipping only shrinks it). The first draw that fools the
target is kept; a sample never fooled keeps ``x``. Decision-based: only the predicted label is read
(:func:`~aisec.attacks.evasion._blackbox.is_adversarial`), so it runs on label-only targets too.
Queries go through a :class:`~aisec.attacks.evasion._blackbox.QueryLedger`: at most ``repeats`` per
sample and never more than the target's remaining ``query_budget``.

This is Foolbox's ``BaseRepeatedAdditiveNoiseAttack`` with ``check_trivial=False``: a sample the
target already misclassifies is not worth a separate query, since its first draw is (almost surely)
misclassified too and the driver never counts it as a success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from pydantic import AliasChoices, Field

from aisec.attacks.base import EvasionParams
from aisec.attacks.evasion._blackbox import QueryLedger, bshape, is_adversarial
from aisec.core.target import Target
from aisec.core.types import Norm


class NoiseParams(EvasionParams):
    """Parameters of the repeated additive-noise attacks."""

    repeats: int = Field(
        default=100, ge=1, validation_alias=AliasChoices("repeats", "max_queries"),
        description="Noise draws per sample, one query each (Foolbox: repeats=100); also accepted as "
        "max_queries, the name every other black-box attack (and aisec scan's --budget) uses.",
    )


def unit_noise(raw: torch.Tensor, norm: Norm) -> torch.Tensor:
    """``raw`` noise ``(M, ...)`` scaled per sample to unit ``norm`` (linf or l2)."""
    flat = raw.reshape(raw.shape[0], -1)
    size = flat.abs().amax(1) if norm is Norm.LINF else cast(torch.Tensor, flat.norm(dim=1))
    return raw / bshape(size.clamp_min(1e-12), raw)


def repeated_noise(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    target_labels: torch.Tensor | None,
    params: NoiseParams,
    draw: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Up to ``params.repeats`` draws of ``x + eps * unit_noise(draw(x))`` per sample; the first that
    fools the target (reaches ``target_labels`` when given) is returned, else ``x``."""
    lo, hi = target.spec.value_range
    n = x.shape[0]
    ledger = QueryLedger(target, n, params.repeats)
    x_adv = x.clone()
    found = torch.zeros(n, dtype=torch.bool)
    for _ in range(params.repeats):
        idx = ledger.afford(torch.nonzero(~found).flatten())
        if idx.numel() == 0:
            break
        cand = (x[idx] + params.eps * unit_noise(draw(x[idx]), params.norm)).clamp(lo, hi)
        tl = target_labels[idx] if target_labels is not None else None
        adv = is_adversarial(ledger.query(cand, idx), y[idx], tl).cpu()
        x_adv[idx[adv]] = cand[adv]
        found[idx[adv]] = True
    ledger.publish()
    return x_adv
