"""What a campaign will cost, before it starts: passes, queries and seconds per job.

A short **calibration** per model times one forward and one forward+backward pass over a batch of its
data (after a warm-up pass), giving seconds per sample for each. A job's cost is then counted, not
guessed: for the robustness check, per attack, its iterations (``steps`` × ``restarts`` × binary-search
rounds, from the attack's own parameter defaults and the job's overrides) times the eps it runs at
(one run for minimum-norm and nested-budget attacks) times the samples, plus the clean pass and
CLEVER's sampled gradients; a black-box attack's ``max_queries`` are forward passes. Checks without
such a count are charged 20 forward+backward passes per sample and marked ``rough``.

The estimate is a floor for the attack work: the reliability probes a robustness check may add (an
escalated attack when a curve looks masked) are not counted ahead, because they run only when needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from aisec.core.dataset import Dataset, take
from aisec.core.target import Target
from aisec.core.types import Capability

#: forward+backward passes per sample charged to a check the estimate cannot count
ROUGH_PASSES = 20
#: seconds every job costs besides its passes: loading the model and data, writing the report and the
#: store's records (measured 0.7-2 s per digits job on one core)
JOB_OVERHEAD_SECONDS = 1.0
_ITERATION_FIELDS = ("steps", "max_iter", "iterations", "n_iter")
_REPEAT_FIELDS = ("restarts", "n_restarts", "binary_search_steps")


@dataclass(frozen=True)
class Calibration:
    """Measured seconds per sample of one model: a forward pass, and a forward+backward pass (input gradient)."""

    forward: float
    forward_backward: float
    batch: int


@dataclass(frozen=True)
class JobCost:
    """A job's counted work: forward+backward passes and forward-only queries (per sample, summed), seconds."""

    passes: int
    queries: int
    seconds: float
    rough: bool = False


def calibrate(target: Target, data: Dataset, *, batch: int = 32, repeats: int = 2) -> Calibration:
    """Time ``repeats`` forward and forward+backward passes over the first ``batch`` samples (best of them)."""
    x, y = take(data, batch, device=target.spec.device)
    n = int(x.shape[0])
    target.predict(x)  # warm-up: first-call allocations and lazy initialisation are not the steady state
    fwd = min(_timed(lambda: target.predict(x)) for _ in range(repeats))
    fb = fwd
    if target.spec.has(Capability.GRADIENTS):
        def step() -> None:
            xx = x.detach().clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(target.logits(xx), y.to(xx.device).long())
            loss.backward()

        step()
        fb = min(_timed(step) for _ in range(repeats))
    return Calibration(forward=fwd / max(n, 1), forward_backward=fb / max(n, 1), batch=n)


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def job_cost(check: str, params: dict[str, Any], samples: int, cal: Calibration) -> JobCost:
    """The cost of one job of ``check`` with ``params`` over ``samples`` samples on a model calibrated as ``cal``."""
    if check == "robustness":
        try:
            passes, queries = _robustness_passes(params, samples)
        except Exception:  # an attack list the count does not know (e.g. 'all'): charged as a rough check
            passes, queries = 0, 0
        else:
            return JobCost(passes=passes, queries=queries,
                           seconds=JOB_OVERHEAD_SECONDS + passes * cal.forward_backward + queries * cal.forward)
    passes = ROUGH_PASSES * samples
    return JobCost(passes=passes, queries=0, seconds=JOB_OVERHEAD_SECONDS + passes * cal.forward_backward,
                   rough=True)


def _robustness_passes(raw: dict[str, Any], samples: int) -> tuple[int, int]:
    from aisec.checks.robustness import RobustnessParams
    from aisec.core.registry import AttackKind, get_attack

    params = RobustnessParams(**raw)
    passes, queries = 0, samples  # the clean pass
    for spec in params.attacks:
        info = get_attack(spec.name)
        defaults: dict[str, Any] = {}
        if info.params is not None:
            defaults = {k: f.default for k, f in info.params.model_fields.items() if isinstance(f.default, int)}
        p = {**defaults, **spec.params}
        iters = next((int(p[k]) for k in _ITERATION_FIELDS if isinstance(p.get(k), int)), 1)
        for k in _REPEAT_FIELDS:
            if isinstance(p.get(k), int) and p[k] > 0:
                iters *= int(p[k])
        norm = spec.resolved_norm()
        runs = 1 if info.kind is AttackKind.MIN_NORM or info.nested_budgets else len(params.grid(spec, norm))
        runs *= spec.eot or 1
        if info.requires and Capability.GRADIENTS in info.requires:
            passes += iters * runs * samples
        else:
            queries += int(p.get("max_queries", iters)) * runs * samples
    if params.clever.enabled:
        c = params.clever
        passes += min(c.samples, samples) * c.nb_batches * c.batch_size * len(c.norms)
    return passes, queries
