"""AutoAttack: an ensemble of parameter-free attacks, worst case per sample.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690

The stages run one after another, each only on the samples every earlier stage left robust, so a
sample counts as robust only if no stage breaks it. A stage breaks a sample when the model's
prediction on its output is wrong and the perturbation lies in the eps-ball (fixed-eps stages are
projected into it by the driver; for minimum-norm stages the distance must be at most
``eps + 1e-6``). Stages are looked up by name in the registry, so any registered attack can serve.

Versions (as the authors' ``autoattack.py``; ``steps`` and ``max_queries`` default to theirs):

- ``standard``: apgd-ce, apgd-t (9 target classes), fab-t (9 target classes), square (5,000
  queries, ``p_init`` 0.8);
- ``plus``: apgd-ce and apgd-dlr (5 restarts each), fab (untargeted, 5 restarts), square, apgd-t,
  fab-t;
- ``rand`` (for stochastic models): apgd-ce and apgd-dlr with gradients averaged over 20 forward
  passes (EOT);
- ``quick`` (aisec's cheap screen, not the authors'): apgd-ce, then apgd-t on the 3 top-ranked
  wrong classes: the two attacks that break nearly everything AutoAttack breaks on standard models
  (Croce & Hein, Table 2), at under half of ``standard``'s gradient cost and with no black-box
  stage. Its stages are a subset of ``standard``'s, so its robust accuracy can only overstate
  ``standard``'s: a screen, not a number to report.

Norms: linf, l2. Needs: gradients (and probabilities for square). Untargeted.

>>> from aisec.attacks.evasion.autoattack import run_autoattack
>>> res = run_autoattack(target, x, y, eps=8 / 255, norm="linf", version="standard")
>>> res.robust.float().mean(), res.broken_by[:5], res.stage_seconds
>>> out = run_attack("autoattack", target, x, y, {"eps": 0.3, "version": "quick"})
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, Outcome, needs_gradients, perturbation_norm, run_attack
from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackInfo, AttackKind, get_attack, names, register_attack
from aisec.core.target import Target, require
from aisec.core.types import Norm

Version = Literal["standard", "plus", "rand", "quick"]
VERSIONS: tuple[str, ...] = ("standard", "plus", "rand", "quick")
#: Slack on the eps-ball for minimum-norm stages (their output is not projected).
MIN_NORM_TOL = 1e-6
#: ``broken_by`` of samples the model already misclassifies without an attack.
CLEAN = "clean"


@dataclass(frozen=True)
class Stage:
    """One stage of an ensemble: a registered attack and the parameters it runs with."""

    attack: str
    params: dict[str, Any] = field(default_factory=dict)


def stages(version: str, *, steps: int = 100, max_queries: int = 5000, n_target_classes: int = 9,
           attacks: Sequence[str] | None = None) -> list[Stage]:
    """The stages of ``version`` (see the module docstring), in the order they run.

    ``version="custom"`` runs ``attacks`` in the given order, each with its ``standard`` parameters
    (apgd-dlr and fab, which ``standard`` lacks, with one restart), as pyautoattack's ``custom``.
    """
    apgd = {"steps": steps, "restarts": 1}
    apgd_t = {**apgd, "n_target_classes": n_target_classes}
    # the ensemble reads FAB at eps only: a sample leaves FAB's batch as soon as it is broken within eps
    fab = {"steps": steps, "restarts": 1, "n_target_classes": n_target_classes, "stop_at_eps": True}
    square = {"max_queries": max_queries, "p_init": 0.8}
    if attacks is not None and version != "custom":
        raise ConfigError(f"a list of attacks is for version 'custom'; version '{version}' fixes its own")
    if version == "standard":
        return [Stage("apgd-ce", apgd), Stage("apgd-t", apgd_t), Stage("fab-t", fab),
                Stage("square", square)]
    if version == "plus":
        return [Stage("apgd-ce", {**apgd, "restarts": 5}), Stage("apgd-dlr", {**apgd, "restarts": 5}),
                Stage("fab", {**fab, "restarts": 5}), Stage("square", square),
                Stage("apgd-t", apgd_t), Stage("fab-t", fab)]
    if version == "rand":
        return [Stage("apgd-ce", {**apgd, "eot_iter": 20}), Stage("apgd-dlr", {**apgd, "eot_iter": 20})]
    if version == "quick":
        return [Stage("apgd-ce", apgd), Stage("apgd-t", {**apgd, "n_target_classes": min(3, n_target_classes)})]
    if version == "custom":
        if not attacks:
            raise ConfigError("AutoAttack version 'custom' needs the list of attacks to run")
        table: dict[str, dict[str, Any]] = {"apgd-ce": apgd, "apgd-dlr": apgd, "fab": fab, "fab-t": fab,
                                            "apgd-t": apgd_t, "square": square}
        return [Stage(a, table.get(a, {})) for a in attacks]
    raise ConfigError(f"unknown AutoAttack version '{version}'; choose one of {', '.join(VERSIONS)} or 'custom'")


class AutoAttackParams(EvasionParams):
    version: Version = Field(default="standard", description="Which ensemble: standard, plus, rand or quick.")
    steps: int = Field(default=100, ge=1, description="Iterations of each gradient stage (APGD, FAB).")
    max_queries: int = Field(default=5000, ge=1, description="Queries per sample of the Square stage.")
    n_target_classes: int = Field(default=9, ge=1, description="Target classes of the targeted stages "
                                  "(apgd-t, fab-t); 'quick' uses at most 3.")


@dataclass
class AutoAttackOutcome(Outcome):
    """An :class:`Outcome` with the ensemble's account of every sample and stage.

    Attributes:
        broken_by: per sample, the stage that broke it (``"clean"``: misclassified before any
            attack; None: robust to every stage).
        stage_seconds: wall-clock seconds of each stage, in run order.
        stage_robust: samples still robust after each stage, in run order (cumulative).
        version: the ensemble that ran.
    """

    broken_by: list[str | None] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_robust: dict[str, int] = field(default_factory=dict)
    version: str = "standard"

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean()) if self.y.numel() else 0.0


def _resolve(plan: list[Stage], target: Target, norm: Norm, version: str) -> list[tuple[Stage, AttackInfo]]:
    """Every stage's registry entry, checked before anything runs (a missing stage names itself)."""
    known = set(names("evasion"))
    missing = [s.attack for s in plan if s.attack not in known]
    if missing:
        raise ConfigError(
            f"AutoAttack version '{version}' needs the attack(s) {', '.join(repr(m) for m in missing)}, which "
            f"are not registered; register them (a plugin) or choose a version without them: "
            f"{', '.join(v for v in VERSIONS if not {s.attack for s in stages(v)} - known)}"
        )
    out = []
    for s in plan:
        info = get_attack(s.attack)
        require(target, info.requires, what=f"AutoAttack stage '{s.attack}'")
        if norm not in info.norms:
            raise ConfigError(f"AutoAttack stage '{s.attack}' does not support norm '{norm.value}'")
        fields = info.cls.Params.model_fields
        out.append((Stage(s.attack, {k: v for k, v in s.params.items() if k in fields}), info))
    return out


def run_autoattack(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm | str = Norm.LINF,
    version: str = "standard",
    batch_size: int = 256,
    seed: int | None = 0,
    progress: Progress = no_progress,
    steps: int = 100,
    max_queries: int = 5000,
    n_target_classes: int = 9,
    attacks: Sequence[str] | None = None,
) -> AutoAttackOutcome:
    """Run the AutoAttack ensemble ``version`` on ``(x, y)`` at budget ``eps`` in ``norm``.

    Each stage runs through :func:`~aisec.attacks.base.run_attack` (batches of ``batch_size``, the
    random state reset to ``seed`` at every stage, as the authors' code does) on the samples still
    robust. Returns the worst case per sample: ``x_adv`` is the breaking stage's example (the clean
    input for robust samples), ``broken_by`` names that stage. ``version="custom"`` with
    ``attacks`` runs those registered attacks as the stages (see :func:`stages`).
    """
    nrm = Norm(norm)
    if eps < 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    plan = _resolve(stages(version, steps=steps, max_queries=max_queries, n_target_classes=n_target_classes,
                           attacks=attacks), target, nrm, version)
    x = x.detach().float().cpu()
    y = y.long().cpu()
    q0 = target.queries
    with torch.no_grad():
        pred_clean = torch.cat([target.predict(x[i : i + batch_size]).argmax(1).cpu()
                                for i in range(0, x.shape[0], batch_size)]) if x.shape[0] else y.clone()
    robust = pred_clean == y
    broken_by: list[str | None] = [None if bool(r) else CLEAN for r in robust]
    x_adv = x.clone()
    pred_adv = pred_clean.clone()
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for j, (stage, info) in enumerate(plan):
        t0 = time.perf_counter()
        idx = torch.nonzero(robust).flatten()
        if idx.numel():
            out = run_attack(info, target, x[idx], y[idx], {"eps": eps, "norm": nrm, **stage.params},
                             batch_size=batch_size, seed=seed, pred_clean=pred_clean[idx])
            inside = (torch.ones_like(out.success) if info.kind is AttackKind.FIXED_EPS
                      else out.distance <= eps + MIN_NORM_TOL)
            hit = (out.pred_adv != y[idx]) & inside
            for i in idx[hit].tolist():
                broken_by[i] = stage.attack
            x_adv[idx[hit]] = out.x_adv[hit]
            pred_adv[idx[hit]] = out.pred_adv[hit]
            robust[idx[hit]] = False
        seconds[stage.attack] = time.perf_counter() - t0
        counts[stage.attack] = int(robust.sum())
        progress(f"autoattack {stage.attack}", j + 1, len(plan))
    success = (pred_adv != y) & (pred_clean == y)
    return AutoAttackOutcome(
        x_adv=x_adv, pred_clean=pred_clean, pred_adv=pred_adv, y=y, success=success,
        distance=perturbation_norm(x_adv - x, nrm), norm=nrm, queries=target.queries - q0,
        broken_by=broken_by, stage_seconds=seconds, stage_robust=counts, version=version,
    )


@register_attack(
    "autoattack",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=False,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/2003.01690",
    iterative=True,
)
class AutoAttack:
    """AutoAttack (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T and Square, worst case per sample."""

    Params = AutoAttackParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: AutoAttackParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # The driver has seeded the random state for this batch; the stages continue from it.
        res = run_autoattack(target, x, y, eps=params.eps, norm=params.norm, version=params.version,
                             batch_size=max(int(x.shape[0]), 1), seed=None, steps=params.steps,
                             max_queries=params.max_queries, n_target_classes=params.n_target_classes)
        # which stage broke each sample, for Outcome.tags (the robustness check's broken_by column);
        # imported here to keep this edit apart from the module's imports
        from aisec.attacks.base import report_sample_tags

        report_sample_tags(res.broken_by, order=[CLEAN, *res.stage_robust])
        return res.x_adv.to(x.device)
