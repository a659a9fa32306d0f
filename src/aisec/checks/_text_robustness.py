"""The robustness check on text targets: HotFlip word budgets, plus embedding PGD as a lower bound.

:class:`~aisec.checks.robustness.RobustnessCheck` hands text targets here. By default it runs

- ``hotflip`` with budgets of 1, 2 and 3 words — the text counterpart of an eps sweep. HotFlip is
  greedy and stops at the first flip, so one run at the largest budget gives every smaller one
  (a sample fooled with k words counts as fooled at every budget ≥ k): robust accuracy never
  rises with the budget;
- ``embedding_pgd`` (per-token L2 ball, eps 0.01/0.03/0.1/0.3/1.0 relative to the median embedding
  norm, the attack's declared ``default_eps``; its registration cites the measurements behind it): perturbed
  embeddings are not real text, so its robust accuracy is a *lower bound* of the accuracy under
  real edits; every measurement says so in its parameters (``bound: lower``).

Robust accuracy (with 95% Wilson intervals), success rate, SAFAIR delta and median perturbation
(words changed, or relative embedding norm) use the image check's metric ids; mean forward passes
per attacked text is ``robustness.mean_queries``. Per-sample rows keep the original and adversarial
texts. CLEVER measures distances in input space and is skipped (token ids have no meaningful norm).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from aisec.attacks.text.base import (
    LOWER_BOUND_NOTE,
    TextOutcome,
    as_text_target,
    decode,
    run_text_attack,
    text_attack_info,
    to_token_ids,
)
from aisec.checks._attack_spec import AttackSpec, select_attacks
from aisec.checks._robustness_summary import PointSummary, TextCurveSummary, TextRobustnessSummary
from aisec.core.check import IntervalSummary, Result
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackInfo, get_attack
from aisec.core.stats import Interval, median_interval, wilson
from aisec.core.target import Target
from aisec.core.types import Norm

ATLAS_EVASION = ("AML.T0043.000", "AML.T0015")


def default_text_attacks() -> list[Any]:
    """HotFlip at its default word budgets (1/2/3) and embedding PGD (L2, its default relative eps) as the
    lower-bound line; the budgets are the attacks' declared ``default_eps``."""
    return [AttackSpec(name="hotflip", eps=list(get_attack("hotflip").default_eps)),
            AttackSpec(name="embedding_pgd", norm=Norm.L2, eps=list(get_attack("embedding_pgd").default_eps))]


def _grid(a: Any, params: Any, info: AttackInfo) -> list[float]:
    """The budgets of one attack: its own, else the check's grid for attacks that count whole edits (words),
    else the attack's declared default sweep."""
    if a.eps is not None:
        grid = a.eps
    elif info.integer_budget and "eps" in params.model_fields_set and params.eps:
        grid = params.eps
    else:
        grid = list(info.default_eps)
    if not grid:
        raise ConfigError(f"attack '{info.name}': the eps grid is empty (it declares no default budgets)")
    if any(e < 0 for e in grid):
        raise ConfigError(f"attack '{info.name}': eps must be ≥ 0, got {grid}")
    if info.integer_budget and any(e != int(e) for e in grid):
        raise ConfigError(f"attack '{info.name}' counts {info.budget_unit or 'edits'}: its budgets must be whole "
                          f"numbers, got {grid}")
    return sorted(set(float(e) for e in grid))


def _mean_interval(v: np.ndarray) -> Interval | None:
    if v.size < 2:
        return None
    from scipy import stats

    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Interval(low=float(v.mean()) - half, high=float(v.mean()) + half, method="t")


def run_text_robustness(target: Target, data: Dataset, params: Any, *, progress: Progress = no_progress) -> Result:
    """The robustness check for a white-box text target (see the module docstring)."""
    t0 = time.perf_counter()
    tt = as_text_target(target, what="the robustness check on text")
    spec = tt.spec
    attacks = params.attacks if "attacks" in params.model_fields_set else default_text_attacks()
    if getattr(params, "target_label", None) is not None:
        raise ConfigError("target_label is not supported on text targets (their attacks are untargeted)")
    attacks, notes = select_attacks(attacks, family="text", capabilities=spec.capabilities,
                                    skip=list(getattr(params, "skip", [])))
    plan = []
    for a in attacks:  # fail fast on names, norms and budgets before any work
        info = text_attack_info(a.name)
        norm = a.norm if a.norm is not None else info.cls.Params().norm
        if norm not in info.norms:
            raise ConfigError(f"attack '{info.name}' supports norms {sorted(n.value for n in info.norms)}, "
                              f"not '{norm.value}'")
        if a.targeted and not info.targeted:
            raise ConfigError(f"attack '{info.name}' cannot be targeted")
        plan.append((a, info, norm, _grid(a, params, info)))
    x, y = take(data, params.samples)
    ids = to_token_ids(tt, x)
    n = int(ids.shape[0])
    y = y.long().cpu()
    bs = params.batch_size
    with torch.no_grad():
        pred_clean = torch.cat([tt.predict(ids[i : i + bs]).argmax(1).cpu() for i in range(0, n, bs)])
    correct = pred_clean == y
    k_clean = int(correct.sum())
    measurements = [Measurement(
        metric="robustness.clean_accuracy", value=k_clean / n, unit="fraction", higher_is_better=True,
        interval=wilson(k_clean, n), sample_count=n, parameters={}, raw_key="samples",
    )]
    table: dict[str, np.ndarray] = {
        "index": np.arange(n), "label": y.numpy(), "pred_clean": pred_clean.numpy(), "clean_correct": correct.numpy(),
        "text": np.array(decode(tt, ids), dtype=object),
    }
    warnings: list[str] = list(notes)
    curves: list[TextCurveSummary] = []
    examples: dict[str, list[dict[str, Any]]] = {}
    gen = torch.Generator().manual_seed(params.seed)
    for a, info, norm, grid in plan:
        tl = None
        if a.targeted:
            tl = (y + torch.randint(1, spec.num_classes, (n,), generator=gen)) % spec.num_classes
        ta, q0 = time.perf_counter(), tt.queries
        real = info.real_text
        base = {"batch_size": min(bs, 64), **a.params, "norm": norm}
        points: list[dict[str, Any]] = []
        fooled_at: list[torch.Tensor] = []
        dist_at: list[np.ndarray] = []
        pred_at: list[torch.Tensor] = []
        last: TextOutcome
        if info.nested_budgets:
            # Greedy and first-flip-stopping: the run at the largest budget contains every smaller one.
            last = run_text_attack(info, tt, ids, y, {**base, "eps": grid[-1]}, target_labels=tl,
                                   seed=params.seed, progress=progress, pred_clean=pred_clean)
            for eps in grid:
                # distance is in the budget's unit: words changed (hotflip), fraction of words (synonym)
                fooled = last.success & (last.distance <= eps + 1e-9)
                points.append({"eps": eps, "raw_robust_accuracy": None})
                fooled_at.append(fooled)
                dist_at.append(np.where(fooled.numpy(), last.distance.numpy().astype(float), np.nan))
                pred_at.append(torch.where(fooled, last.pred_adv, pred_clean))
            queries = last.queries
        else:
            best = torch.zeros(n, dtype=torch.bool)
            best_dist = torch.full((n,), float("nan"))
            best_pred = pred_clean.clone()
            prev: float | None = None
            queries = torch.zeros(n, dtype=torch.long)
            for eps in grid:
                last = run_text_attack(info, tt, ids, y, {**base, "eps": eps}, target_labels=tl,
                                       seed=params.seed, progress=progress, pred_clean=pred_clean)
                queries += last.queries
                now = last.success
                raw = float(((pred_clean == y) & ~now).float().mean())
                if prev is not None and raw > prev + 1e-12:
                    warnings.append(
                        f"{info.name} ({norm.value}): raw robust accuracy rose from {prev:.3f} to {raw:.3f} at "
                        f"eps={eps:g}; the reported curve keeps the smaller-eps results. A rising curve hints at "
                        "too few steps or gradient masking."
                    )
                prev = raw
                new = now & ~best
                best_dist = torch.where(new, last.distance, best_dist)
                best_pred = torch.where(new, last.pred_adv, best_pred)
                best = best | now
                points.append({"eps": eps, "raw_robust_accuracy": raw})
                fooled_at.append(best.clone())
                dist_at.append(best_dist.numpy().copy())
                pred_at.append(best_pred.clone())
        key = f"{info.name}-{norm.value}" + ("-targeted" if a.targeted else "")
        unit = info.budget_unit or (f"{norm.value} (relative)" if base.get("relative", True) else norm.value)
        extra: dict[str, Any] = {"space": "tokens" if real else "embedding", "real_text": real}
        if not real:
            extra |= {"bound": "lower", "note": LOWER_BOUND_NOTE}
            if base.get("relative", True):
                from aisec.attacks.text.embedding_pgd import swap_distance

                # eps from which the ball holds a typical nearest-neighbour word swap
                sd = swap_distance(tt, ids, norm)
                if math.isfinite(sd):
                    extra["nn_swap_distance"] = round(sd, 4)
        summaries: list[PointSummary] = []
        for eps, point, fooled, dist, pred in zip(grid, points, fooled_at, dist_at, pred_at, strict=True):
            pp = {"attack": info.name, "norm": norm.value, "eps": eps, "targeted": a.targeted, **extra, **a.params}
            k_rob = int((correct & ~fooled).sum())
            k_fool = int((fooled & correct).sum())
            delta = k_clean - k_rob
            d_succ = dist[(fooled & correct).numpy()]
            med = float(np.median(d_succ)) if d_succ.size else float("nan")
            summaries.append(PointSummary(
                eps=eps, raw_robust_accuracy=point["raw_robust_accuracy"], robust_accuracy=k_rob / n,
                ci=IntervalSummary.from_interval(wilson(k_rob, n)), success_rate=k_fool / max(k_clean, 1),
                safair_delta=delta / n, median_distance=med,
            ))
            measurements += [
                Measurement(metric="robustness.robust_accuracy", value=k_rob / n, unit="fraction",
                            higher_is_better=True, interval=wilson(k_rob, n), sample_count=n, parameters=pp,
                            raw_key="samples"),
                Measurement(metric="robustness.attack_success_rate", value=k_fool / max(k_clean, 1),
                            unit="fraction", higher_is_better=False, interval=wilson(k_fool, k_clean),
                            sample_count=k_clean, parameters=pp, raw_key="samples"),
                Measurement(metric="robustness.safair_delta", value=delta / n, unit="fraction",
                            higher_is_better=False, interval=wilson(delta, n), sample_count=n, parameters=pp,
                            raw_key="samples"),
            ]
            if d_succ.size:
                measurements.append(Measurement(
                    metric="robustness.median_perturbation", value=med, unit=unit, higher_is_better=True,
                    interval=median_interval(d_succ), sample_count=int(d_succ.size), parameters=pp,
                    raw_key="samples",
                ))
            success = (fooled & correct).numpy()  # as in the aggregates: only a clean-correct sample can be fooled
            table[f"{key}@{eps:g}:pred"] = pred.numpy()
            table[f"{key}@{eps:g}:fooled"] = success
            table[f"{key}@{eps:g}:distance"] = np.where(success, dist, np.nan)
        attacked = queries[correct if tl is None else torch.ones(n, dtype=torch.bool)].numpy().astype(float)
        if attacked.size:
            measurements.append(Measurement(
                metric="robustness.mean_queries", value=float(attacked.mean()), unit="forward passes",
                higher_is_better=True, interval=_mean_interval(attacked), sample_count=int(attacked.size),
                parameters={"attack": info.name, "norm": norm.value, "eps": grid, "targeted": a.targeted,
                            "statistic": "mean over attacked texts", **extra, **a.params},
                raw_key="samples",
            ))
        table[f"{key}:queries"] = queries.numpy()
        if real and last.adv_texts is not None:
            table[f"{key}:adv_text"] = np.array(last.adv_texts, dtype=object)
            table[f"{key}:words_changed"] = last.words_changed.numpy()
            if params.examples:
                order = torch.argsort((~last.success).to(torch.int8), stable=True)[: params.examples]
                examples[key] = [r for r in last.records() if r["index"] in set(order.tolist())]
        curves.append(TextCurveSummary(
            key=key, attack=info.name, norm=info.budget_unit or f"embedding-{norm.value}",
            kind=info.kind.value, targeted=a.targeted, params=a.params, points=summaries,
            warnings=[], seconds=time.perf_counter() - ta, queries=tt.queries - q0,
            real_text=real, note=last.note, example_eps=None,
        ))
    summary = TextRobustnessSummary(
        samples=n, clean_accuracy=k_clean / n, clean_ci=IntervalSummary.from_interval(wilson(k_clean, n)),
        curves=curves, clever=None, classes=list(data.info.classes), modality="text",
        text_examples=examples, lower_bound_note=LOWER_BOUND_NOTE,
    )
    return Result(
        check="robustness", measurements=measurements, params=params.model_dump(mode="json"), summary=summary,
        tables={"samples": table}, images={}, warnings=warnings, seconds=time.perf_counter() - t0,
        threats=ATLAS_EVASION,
    )


__all__ = ["default_text_attacks", "run_text_robustness"]
