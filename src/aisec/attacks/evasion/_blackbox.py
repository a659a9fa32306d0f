"""Query bookkeeping shared by the black-box attacks (Square, HopSkipJump, SimBA, Boundary).

Score-based attacks (Square, SimBA) read probabilities through :func:`margin` and require
:attr:`~aisec.core.types.Capability.PROBABILITIES`. Decision-based ones (HopSkipJump, Boundary) read
nothing but ``argmax`` through :func:`is_adversarial`; they require :data:`DECISION_ONLY` (no
capability: every target reveals its predicted label), so label-only targets — whose ``predict``
returns one-hot rows — qualify, and so does every probability target.

A :class:`QueryLedger` holds, for one batch, each sample's query count against the attack's
per-sample ``max_queries`` and the target's remaining hard budget. Attacks ask it which samples
can afford the next query *before* querying (:meth:`QueryLedger.afford`), so neither budget is ever
exceeded and the target never has to raise :class:`~aisec.core.errors.BudgetExceeded`.

The target budget keeps ``reserve`` queries back: :func:`~aisec.attacks.base.run_attack` queries
each sample once more to score the adversarial example. With a target budget and several batches,
earlier batches may spend what later ones needed; give a batch size ≥ the number of samples.

Per-sample counts are also published to :func:`recording` so the scan summary can report
queries min/avg/max per sample even though attacks run batched.

Tabular constraints: when :func:`~aisec.core.constraints.bind_constraints` is active (``run_attack``
binds them per batch when given ``constraints=``), the ledger projects every query onto the valid
set before it is sent (:meth:`QueryLedger.query`), so a black-box attack never shows the target an
input the real system could not receive. The attacks keep their own (unprojected) iterates;
``run_attack`` applies the same deterministic projection to what they return, which gives back
exactly the point that was queried and scored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams
from aisec.core.constraints import active_constraints
from aisec.core.errors import ConfigError
from aisec.core.target import Target
from aisec.core.types import Capability

DECISION_ONLY: frozenset[Capability] = frozenset()
"""What a decision-based attack requires: nothing beyond the predicted label every target returns."""

_RECORDER: ContextVar[list[torch.Tensor] | None] = ContextVar("aisec_query_recorder", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[torch.Tensor]]:
    """Collect per-sample query counts of every black-box batch run inside the block."""
    sink: list[torch.Tensor] = []
    token = _RECORDER.set(sink)
    try:
        yield sink
    finally:
        _RECORDER.reset(token)


class QueryLedger:
    """Per-sample and target-wide query accounting for one batch of ``n`` samples."""

    def __init__(self, target: Target, n: int, max_per_sample: int, *, reserve: int | None = None) -> None:
        self.target = target
        self.max_per_sample = max_per_sample
        self.counts = torch.zeros(n, dtype=torch.long)
        budget = target.spec.query_budget
        keep = n if reserve is None else reserve
        self._global_left = None if budget is None else max(0, budget - target.queries - keep)
        self.constraints = active_constraints()
        if self.constraints is not None and self.constraints.x.shape[0] != n:
            raise ConfigError(
                f"constraints are bound to a batch of {self.constraints.x.shape[0]} inputs but the attack "
                f"runs on {n}; bind them to the batch the attack receives"
            )

    @property
    def global_left(self) -> int | None:
        return self._global_left

    def afford(self, idx: torch.Tensor, k: int = 1) -> torch.Tensor:
        """The subset of sample indices ``idx`` (CPU, long) that can each spend ``k`` more queries."""
        idx = idx.cpu()
        ok = idx[self.counts[idx] + k <= self.max_per_sample]
        if self._global_left is not None:
            ok = ok[: self._global_left // k] if k > 0 else ok
        return ok

    def query(self, xq: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Probabilities for ``xq``; ``owners[i]`` is the sample index each row is charged to (and,
        under bound constraints, the original ``xq[i]`` is projected against)."""
        xq = self._charge(xq, owners)
        if xq.shape[0] == 0:
            return torch.zeros(0, self.target.spec.num_classes)
        return self.target.predict(xq).float().to(xq.device)

    def query_log_scores(self, xq: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Scores whose differences are log-probability ratios, charged like :meth:`query`.

        The logits when the target exposes them (``logits()`` comes with
        :attr:`~aisec.core.types.Capability.GRADIENTS`), else the log of the probabilities. The two
        agree up to a per-row constant, so any margin is the same, except where the probabilities
        bottom out: below the clamp 1e-30 (a class 69 logits behind; float32 softmax gives 0 from
        about 100) every log-probability margin reads the same, and a random search that only
        accepts improvements stops moving. The logits never saturate (AutoAttack's Square reads them).
        """
        xq = self._charge(xq, owners)
        if xq.shape[0] == 0:
            return torch.zeros(0, self.target.spec.num_classes)
        if Capability.GRADIENTS in self.target.spec.capabilities:
            with torch.no_grad():
                return self.target.logits(xq).float().to(xq.device)
        return self.target.predict(xq).float().to(xq.device).clamp_min(1e-30).log()

    def _charge(self, xq: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        m = int(xq.shape[0])
        if m == 0:
            return xq
        if self._global_left is not None:
            if m > self._global_left:  # a bug in the caller, never the target's problem
                raise RuntimeError(f"attack asked {m} queries with {self._global_left} left; call afford() first")
            self._global_left -= m
        self.counts.index_add_(0, owners.cpu(), torch.ones(m, dtype=torch.long))
        if self.constraints is not None:
            xq = self.constraints.project(xq, owners)
        return xq

    def publish(self) -> None:
        sink = _RECORDER.get()
        if sink is not None:
            sink.append(self.counts.clone())


def is_adversarial(probs: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None) -> torch.Tensor:
    """The decision alone: ``argmax`` of ``probs`` (probabilities, or one-hot labels) vs the goal."""
    pred = probs.argmax(1)
    return pred == target_labels if target_labels is not None else pred != y


def margin(probs: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None) -> torch.Tensor:
    """Log-probability margin; negative means adversarial (untargeted) / target reached (targeted)."""
    return score_margin(probs.clamp_min(1e-30).log(), y, target_labels)


def score_margin(logp: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None) -> torch.Tensor:
    """:func:`margin` on log-scores (logits or log-probabilities: the same up to a per-row constant)."""
    lab = y if target_labels is None else target_labels
    own = logp.gather(1, lab[:, None]).squeeze(1)
    other = logp.scatter(1, lab[:, None], -torch.inf).amax(1)
    return own - other if target_labels is None else other - own


def flat_norm(d: torch.Tensor, linf: bool) -> torch.Tensor:
    f = d.reshape(d.shape[0], -1)
    return f.abs().amax(1) if linf else f.norm(dim=1)


def bshape(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


class DecisionParams(EvasionParams):
    """Parameters every decision-based attack (HopSkipJump, Boundary) shares."""

    max_queries: int = Field(default=1000, ge=1, description="Queries per sample, all phases included.")
    init_trials: int = Field(default=100, ge=1, description="Random-noise tries for a starting point.")
    search_steps: int = Field(default=10, ge=1, description="Binary-search steps to the boundary.")


def start_decision_attack(
    ledger: QueryLedger,
    x: torch.Tensor,
    y: torch.Tensor,
    target_labels: torch.Tensor | None,
    lo: float,
    hi: float,
    params: DecisionParams,
    *,
    linf: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a decision-based attack starts: one query finds the samples already misclassified (they
    need no search); the others get :func:`find_starting_points`. Returns ``(x_adv, found)``."""
    idx = ledger.afford(torch.arange(x.shape[0]))
    done = torch.zeros(x.shape[0], dtype=torch.bool)
    if idx.numel():
        tl = target_labels[idx] if target_labels is not None else None
        done[idx] = is_adversarial(ledger.query(x[idx], idx), y[idx], tl).cpu()
    return find_starting_points(ledger, x, y, target_labels, lo, hi, ~done, trials=params.init_trials,
                                search_steps=params.search_steps, linf=linf)


def find_starting_points(
    ledger: QueryLedger,
    x: torch.Tensor,
    y: torch.Tensor,
    target_labels: torch.Tensor | None,
    lo: float,
    hi: float,
    active: torch.Tensor,
    *,
    trials: int,
    search_steps: int,
    linf: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial starting points for decision-based attacks, for the samples in the bool mask
    ``active``: uniform noise, then a binary search toward ``x``. Returns ``(x_adv, found)``; where
    not found, ``x_adv`` is ``x``."""
    n = x.shape[0]
    x_adv = x.clone()
    found = torch.zeros(n, dtype=torch.bool)
    for _ in range(trials):
        idx = ledger.afford(torch.nonzero(active & ~found).flatten())
        if idx.numel() == 0:
            break
        cand = torch.empty_like(x[idx]).uniform_(lo, hi)
        tl = target_labels[idx] if target_labels is not None else None
        adv = is_adversarial(ledger.query(cand, idx), y[idx], tl).cpu()
        hit = idx[adv]
        x_adv[hit] = cand[adv]
        found[hit] = True
    x_adv = boundary_search(ledger, x, x_adv, found, y, target_labels, steps=search_steps, linf=linf)
    return x_adv, found


def blend(x: torch.Tensor, x_adv: torch.Tensor, alpha: torch.Tensor, linf: bool) -> torch.Tensor:
    """A point ``alpha`` of the way from ``x`` to ``x_adv`` (L2: on the segment; Linf: clipped box)."""
    a = bshape(alpha, x)
    if not linf:
        return (1 - a) * x + a * x_adv
    d = x_adv - x
    r = bshape(flat_norm(d, True), x) * a
    return x + torch.maximum(torch.minimum(d, r), -r)


def boundary_search(
    ledger: QueryLedger,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    active: torch.Tensor,
    y: torch.Tensor,
    target_labels: torch.Tensor | None,
    *,
    steps: int,
    linf: bool = False,
) -> torch.Tensor:
    """Batched binary search, ``steps`` queries per sample, for the adversarial point nearest ``x``
    on the path to ``x_adv``. Samples that run out of queries keep their last adversarial point."""
    out = x_adv.clone()
    idx_all = torch.nonzero(active).flatten()
    low = torch.zeros(x.shape[0], device=x.device)
    high = torch.ones(x.shape[0], device=x.device)
    for _ in range(steps):
        idx = ledger.afford(idx_all)
        if idx.numel() == 0:
            break
        mid = (low[idx] + high[idx]) / 2
        cand = blend(x[idx], x_adv[idx], mid, linf)
        tl = target_labels[idx] if target_labels is not None else None
        adv = is_adversarial(ledger.query(cand, idx), y[idx], tl).cpu()
        high[idx[adv]] = mid[adv]
        low[idx[~adv]] = mid[~adv]
        out[idx[adv]] = cand[adv]
        idx_all = idx
    return out
