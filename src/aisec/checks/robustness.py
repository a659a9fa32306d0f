"""Robustness check: how easily is the model fooled at test time?

For each attack and each eps it reports robust accuracy (correct on the clean input *and* on the
adversarial one) with a 95% Wilson interval, the attack success rate over the clean-correct
samples, the median perturbation norm, and the SAFAIR delta (clean accuracy − attacked accuracy),
plus CLEVER scores per sample. Per-sample predictions and distances are kept.

On a text target (modality text, e.g. a local Hugging Face classifier) the check runs the text
attacks instead: HotFlip word substitutions with a budget of 1/2/3 words as the "eps" sweep, and
embedding-space PGD as a lower-bound line (:mod:`aisec.checks._text_robustness`).

Robust accuracy is reported as a worst case over the eps grid: an adversarial example found at a
smaller eps lies inside every larger ball, so a sample fooled at eps₁ counts as fooled at every
eps₂ > eps₁. The raw per-eps numbers are kept too; when the raw curve rises with eps, the check
warns (a sign of gradient masking or too few steps), as it does when one-step FGSM beats
multi-step PGD at the same eps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.attacks.base import Outcome, run_attack
from aisec.checks._attack_spec import ALL, DEFAULT_EPS, AttackSpec, Eps, select_attacks
from aisec.checks._robustness_summary import (
    CleverSummary,
    CurveSummary,
    PointSummary,
    RobustnessSummary,
    TextCurveSummary,
    TextRobustnessSummary,
)
from aisec.core.check import IntervalSummary, Result, require_same_classes
from aisec.core.checkpoint import load_step, save_step
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackKind, get_attack, names, register_check
from aisec.core.stats import median_interval, wilson
from aisec.core.target import Target, check_inputs
from aisec.core.types import Modality, Norm

ATLAS_EVASION = ("AML.T0043.000", "AML.T0015")

class CleverParams(BaseModel):
    """CLEVER score estimation (Weng et al. 2018), untargeted."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    samples: int = Field(default=20, ge=1, description="How many samples get a CLEVER score.")
    norms: list[Norm] = Field(default_factory=lambda: [Norm.L2])
    nb_batches: int = Field(default=10, ge=2)
    batch_size: int = Field(default=100, ge=2)
    radius: dict[Norm, float] = Field(
        default_factory=lambda: {Norm.L2: 2.0, Norm.LINF: 0.1, Norm.L1: 10.0}
    )


class RobustnessParams(BaseModel):
    """Options of the robustness check (the same model backs CLI flags, YAML plans and Python)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    attacks: list[AttackSpec] = Field(
        default_factory=lambda: [AttackSpec(name="fgsm"), AttackSpec(name="pgd")]
    )
    eps: list[Eps] | None = Field(default=None, description="Linf eps grid (default 2..32/255).")
    eps_l2: list[Eps] | None = None
    eps_l0: list[Eps] | None = None
    samples: int | None = Field(default=500, ge=1, description="How many samples to attack.")
    batch_size: int = Field(default=256, ge=1)
    quantize: bool = Field(default=False, description="Round adversarials to 8-bit (SAFAIR rule).")
    clever: CleverParams = Field(default_factory=CleverParams)
    examples: int = Field(default=8, ge=0, description="Example images kept for the report.")
    seed: int = 0
    skip: list[str] = Field(default_factory=list, description="Attacks removed from the selection (e.g. of 'all').")
    target_label: int | None = Field(
        default=None, ge=0, description="Targeted run: every sample aims at this class (its own samples are left out)."
    )

    @field_validator("skip", mode="before")
    @classmethod
    def _skip_names(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @field_validator("attacks", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        if isinstance(v, list):
            return [{"name": a.strip()} if isinstance(a, str) else a for a in v]
        return v

    def grid(self, spec: AttackSpec, norm: Norm) -> list[float]:
        if spec.eps is not None:
            eps = spec.eps
        else:
            given = {Norm.LINF: self.eps, Norm.L2: self.eps_l2, Norm.L0: self.eps_l0}.get(norm)
            eps = given if given is not None else DEFAULT_EPS[norm]
        if not eps:
            raise ConfigError(f"attack '{spec.name}': the eps grid is empty")
        if any(e < 0 for e in eps):
            raise ConfigError(f"attack '{spec.name}': eps must be ≥ 0, got {eps}")
        return sorted(set(float(e) for e in eps))


@register_check("robustness")
class RobustnessCheck:
    """Evasion robustness: robust accuracy vs eps with CIs, success rate, SAFAIR delta, CLEVER."""

    Params = RobustnessParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--attacks", "Comma-separated attacks, e.g. pgd,fgsm,cw,deepfool; 'all' = every one the target takes.",
             kind="list", short="-a"),
        Flag("--skip", "Attacks to leave out of the selection, e.g. boundary,hopskipjump.", kind="list"),
        Flag("--eps", "Linf eps grid, e.g. 0.05,0.1 or 4/255,8/255.", kind="floats"),
        Flag("--eps-l2", "L2 eps grid for L2 attacks (cw, deepfool, pgd with --norm l2).", kind="floats"),
        Flag("--norm", "Norm for all attacks.", kind="choice", choices=("linf", "l2", "l1", "l0")),
        Flag("--targeted", "Targeted attacks toward a random other class.", kind="switch"),
        Flag("--target-label", "Targeted attacks toward this one class (samples of that class are left out).",
             kind="int"),
        Flag("--count", "How many samples to attack (default 500).", kind="int", short="-c"),
        Flag("--steps", "Iterations for iterative attacks.", kind="int"),
        Flag("--batch-size", "Samples per forward pass.", kind="int"),
        Flag("--quantize", "Round adversarial images to 8-bit (SAFAIR rule).", kind="switch"),
        Flag("--clever-samples", "Samples that get a CLEVER score (0 = skip).", kind="int"),
        Flag("--clever-norms", "CLEVER norms, e.g. l2,linf,l1.", kind="list"),
    )

    @staticmethod
    def from_flags(r: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The check's plan entry ``r`` with the given flags (None = not given) applied."""
        if f["attacks"]:
            r["attacks"] = [{"name": a} for a in f["attacks"]]
        if f.get("skip"):
            r["skip"] = list(f["skip"])
        if f.get("target_label") is not None:
            r["target_label"] = f["target_label"]
        attack_params: dict[str, Any] = {}
        if f["steps"] is not None:
            attack_params["steps"] = f["steps"]
        if f["norm"] or f["targeted"] or attack_params:
            specs = [a if isinstance(a, dict) else {"name": a} for a in r.get("attacks", ["fgsm", "pgd"])]
            # --steps goes to the attacks that declare they are iterative (they take ``steps``)
            iterative = set(names("evasion", iterative=True)) | set(names("text", iterative=True))
            for a in specs:
                if f["norm"]:
                    a["norm"] = f["norm"]
                if f["targeted"]:
                    a["targeted"] = True
                if attack_params and (a["name"].lower() in iterative or a["name"].lower() == ALL):
                    a["params"] = {**a.get("params", {}), **attack_params}
            r["attacks"] = specs
        if f["eps"] is not None:
            r["eps"] = f["eps"]
        if f["eps_l2"] is not None:
            r["eps_l2"] = f["eps_l2"]
        if f["count"] is not None:
            r["samples"] = f["count"]
        if f["batch_size"] is not None:
            r["batch_size"] = f["batch_size"]
        if f["quantize"]:
            r["quantize"] = True
        clever = dict(r.get("clever", {}))
        if f["clever_samples"] is not None:
            if f["clever_samples"] == 0:
                clever["enabled"] = False
            else:
                clever["samples"] = f["clever_samples"]
        if f["clever_norms"]:
            clever["norms"] = f["clever_norms"]
        if clever:
            r["clever"] = clever
        return r

    def run(
        self,
        target: Target,
        data: Dataset,
        params: RobustnessParams,
        *,
        progress: Progress = no_progress,
    ) -> Result:
        t0 = time.perf_counter()
        spec = target.spec
        require_same_classes(target, data)
        if spec.modality is Modality.TEXT:
            from aisec.checks._text_robustness import run_text_robustness

            return run_text_robustness(target, data, params, progress=progress)
        if params.target_label is not None and params.target_label >= spec.num_classes:
            raise ConfigError(f"target_label {params.target_label} is not a class of model '{spec.name}' "
                              f"({spec.num_classes} classes)")
        fixed = params.target_label
        attacks, selection_notes = select_attacks(params.attacks, family="evasion", capabilities=spec.capabilities,
                                                  skip=params.skip, targeted=fixed is not None)
        if fixed is not None:
            attacks = [a.model_copy(update={"targeted": True}) for a in attacks]
        for a in attacks:  # fail fast on names and norms before any work
            info = get_attack(a.name)
            norm = a.resolved_norm()
            if norm not in info.norms:
                raise ConfigError(
                    f"attack '{info.name}' supports norms {sorted(n.value for n in info.norms)}, "
                    f"not '{norm.value}'"
                )
        x, y = take(data, params.samples, device=spec.device)
        check_inputs(spec, x, what=f"dataset '{data.info.name}'")
        n = int(x.shape[0])
        with torch.no_grad():
            pred_clean = torch.cat(
                [target.predict(x[i : i + params.batch_size]).argmax(1) for i in range(0, n, params.batch_size)]
            ).cpu()
        yc = y.cpu()
        correct = pred_clean == yc
        k_clean = int(correct.sum())
        measurements = [
            Measurement(
                metric="robustness.clean_accuracy", value=k_clean / n, unit="fraction",
                higher_is_better=True, interval=wilson(k_clean, n), sample_count=n,
                parameters={}, raw_key="samples",
            )
        ]
        table: dict[str, np.ndarray] = {
            "index": np.arange(n), "label": yc.numpy(), "pred_clean": pred_clean.numpy(),
        }
        warnings: list[str] = []
        curves: list[CurveSummary] = []
        images: dict[str, dict[str, np.ndarray]] = {}
        gen = torch.Generator().manual_seed(params.seed)
        warnings += selection_notes
        # A fixed target class: its own samples cannot be sent to it, so they are left out of every count.
        inc = torch.ones(n, dtype=torch.bool) if fixed is None else yc != fixed
        n_a, correct_a = int(inc.sum()), correct & inc
        k_clean_a = int(correct_a.sum())
        if n_a == 0:
            raise ConfigError(f"target_label {fixed}: every one of the {n} samples is of that class; nothing to attack")
        if fixed is not None:
            warnings.append(f"targeted at class {fixed}: the {n - n_a} sample(s) labelled {fixed} are left out of "
                            f"every attack's robust accuracy and success rate ({n_a} of {n} counted)")
        for a in attacks:
            info = get_attack(a.name)
            norm = a.resolved_norm()
            grid = params.grid(a, norm)
            tl = None
            if fixed is not None:
                tl = torch.full_like(yc, fixed)
            elif a.targeted:
                offset = torch.randint(1, spec.num_classes, (n,), generator=gen)
                tl = (yc + offset) % spec.num_classes
            key = f"{info.name}-{norm.value}" + ("-targeted" if a.targeted else "")
            step = f"{len(curves):02d}-{key}"  # a run killed after this attack resumes after it
            kept = load_step(step)
            if kept is not None:
                curve = _curve_from_step(*kept)
            else:
                curve = self._curve(target, x, y, tl, info.name, info.kind, norm, grid, a, params, progress,
                                    pred_clean)
                save_step(step, *_curve_to_step(curve))
            points: list[PointSummary] = []
            for point, fooled, dist in zip(curve["points"], curve["fooled"], curve["distances"], strict=True):
                eps = point["eps"]
                fooled = fooled & inc
                pp = {"attack": info.name, "norm": norm.value, "eps": eps, "targeted": a.targeted,
                      "quantize": params.quantize, **a.params,
                      **({"target_label": fixed} if fixed is not None else {})}
                robust = correct_a & ~fooled
                k_rob = int(robust.sum())
                k_fool = int((fooled & correct_a).sum())
                delta = k_clean_a - k_rob
                d_succ = dist[(fooled & correct_a).numpy()]
                med = float(np.median(d_succ)) if d_succ.size else float("nan")
                points.append(PointSummary(
                    eps=eps, raw_robust_accuracy=point["raw_robust_accuracy"], robust_accuracy=k_rob / n_a,
                    ci=IntervalSummary.from_interval(wilson(k_rob, n_a)), success_rate=k_fool / max(k_clean_a, 1),
                    safair_delta=delta / n_a, median_distance=med,
                ))
                measurements += [
                    Measurement(metric="robustness.robust_accuracy", value=k_rob / n_a, unit="fraction",
                                higher_is_better=True, interval=wilson(k_rob, n_a), sample_count=n_a,
                                parameters=pp, raw_key="samples"),
                    Measurement(metric="robustness.attack_success_rate", value=k_fool / max(k_clean_a, 1),
                                unit="fraction", higher_is_better=False, interval=wilson(k_fool, k_clean_a),
                                sample_count=k_clean_a, parameters=pp, raw_key="samples"),
                    Measurement(metric="robustness.safair_delta", value=delta / n_a, unit="fraction",
                                higher_is_better=False, interval=wilson(delta, n_a), sample_count=n_a,
                                parameters=pp, raw_key="samples"),
                ]
                if d_succ.size:  # no successful attack: there is no perturbation to take the median of
                    measurements.append(Measurement(
                        metric="robustness.median_perturbation", value=med, unit=norm.value, higher_is_better=True,
                        interval=median_interval(d_succ), sample_count=int(d_succ.size), parameters=pp,
                        raw_key="samples",
                    ))
                table[f"{key}@{eps:g}:pred"] = curve["preds"][grid.index(eps)].numpy()
                table[f"{key}@{eps:g}:fooled"] = fooled.numpy()
                table[f"{key}@{eps:g}:distance"] = dist
            warnings += curve["warnings"]
            if params.examples and "example" in curve:
                images[key] = curve["example"]
            curves.append(CurveSummary(
                attack=curve["attack"], norm=curve["norm"], kind=curve["kind"], targeted=curve["targeted"],
                params=curve["params"], points=points, warnings=curve["warnings"], seconds=curve["seconds"],
                queries=curve["queries"], example_eps=curve["example_eps"], key=key,
            ))
        warnings += _masking_warnings(curves)
        clever_summary = self._clever(target, x, params, measurements, table, warnings, progress)
        summary = RobustnessSummary(
            samples=n, clean_accuracy=k_clean / n, clean_ci=IntervalSummary.from_interval(wilson(k_clean, n)),
            curves=curves, clever=clever_summary, classes=list(data.info.classes),
        )
        return Result(
            check="robustness", measurements=measurements, params=params.model_dump(mode="json"),
            summary=summary, tables={"samples": table}, images=images, warnings=warnings,
            seconds=time.perf_counter() - t0, threats=ATLAS_EVASION,
        )

    def _curve(
        self, target: Target, x: torch.Tensor, y: torch.Tensor, tl: torch.Tensor | None,
        name: str, kind: AttackKind, norm: Norm, grid: list[float], spec: AttackSpec,
        params: RobustnessParams, progress: Progress, pred_clean: torch.Tensor,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        q0 = target.queries
        points: list[dict[str, Any]] = []
        fooled_list: list[torch.Tensor] = []
        dist_list: list[np.ndarray] = []
        preds: list[torch.Tensor] = []
        warnings: list[str] = []
        example: dict[str, np.ndarray] | None = None
        y_cpu = y.cpu()
        if kind is AttackKind.MIN_NORM:
            out = run_attack(name, target, x, y, {"norm": norm, **spec.params}, target_labels=tl,
                             batch_size=params.batch_size, quantize=params.quantize,
                             seed=params.seed, progress=progress, pred_clean=pred_clean)
            warnings += [f"{name} ({norm.value}): {t}" for t in out.notes]
            fooled_any = out.pred_adv != y_cpu
            for eps in grid:
                fooled = fooled_any & (out.distance <= eps + 1e-6)
                points.append({"eps": eps, "raw_robust_accuracy": None})
                fooled_list.append(fooled)
                dist_list.append(np.where(fooled.numpy(), out.distance.numpy(), np.nan))
                preds.append(torch.where(fooled, out.pred_adv, out.pred_clean))
            example = _examples(x, out, params.examples)
        else:
            best_fooled = torch.zeros_like(y_cpu, dtype=torch.bool)
            best_dist = torch.full((y_cpu.shape[0],), float("nan"))
            best_pred: torch.Tensor | None = None
            prev_raw: float | None = None
            outs: list[Outcome] = []
            for eps in grid:
                out = run_attack(name, target, x, y, {"norm": norm, "eps": eps, **spec.params},
                                 target_labels=tl, batch_size=params.batch_size,
                                 quantize=params.quantize, seed=params.seed, progress=progress, pred_clean=pred_clean)
                outs.append(out)
                fooled_now = out.pred_adv != y_cpu
                raw_acc = float((out.robust).float().mean())
                if prev_raw is not None and raw_acc > prev_raw + 1e-12:
                    warnings.append(
                        f"{name} ({norm.value}): raw robust accuracy rose from {prev_raw:.3f} to "
                        f"{raw_acc:.3f} at eps={eps:g}; the reported curve keeps the smaller-eps "
                        "adversarials. A rising curve hints at gradient masking or too few steps."
                    )
                prev_raw = raw_acc
                new = fooled_now & ~best_fooled
                best_dist = torch.where(new, out.distance, best_dist)
                best_pred = out.pred_adv if best_pred is None else torch.where(best_fooled, best_pred, out.pred_adv)
                best_fooled = best_fooled | fooled_now
                points.append({"eps": eps, "raw_robust_accuracy": raw_acc})
                fooled_list.append(best_fooled.clone())
                dist_list.append(best_dist.numpy().copy())
                preds.append(best_pred.clone())
            mid = outs[len(outs) // 2]
            example = _examples(x, mid, params.examples)
        return {
            "attack": name, "norm": norm.value, "kind": kind.value, "targeted": spec.targeted,
            "params": spec.params, "points": points, "fooled": fooled_list, "distances": dist_list,
            "preds": preds, "warnings": warnings, "seconds": time.perf_counter() - t0,
            "queries": target.queries - q0, **({"example": example} if example is not None else {}),
            "example_eps": (grid[len(grid) // 2] if kind is AttackKind.FIXED_EPS else None),
        }

    def _clever(
        self, target: Target, x: torch.Tensor, params: RobustnessParams,
        measurements: list[Measurement], table: dict[str, np.ndarray], warnings: list[str],
        progress: Progress,
    ) -> dict[str, CleverSummary] | None:
        cp = params.clever
        if not cp.enabled:
            return None
        from aisec.core.types import Capability
        from aisec.metrics.clever import clever_u

        if Capability.GRADIENTS not in target.spec.capabilities:
            warnings.append("CLEVER skipped: it needs gradients and the target is not white box")
            return None
        m = min(cp.samples, x.shape[0])
        out: dict[str, CleverSummary] = {}
        for norm in cp.norms:
            radius = cp.radius.get(norm, DEFAULT_EPS[norm][-1])
            res = clever_u(target, x[:m], norm=norm, nb_batches=cp.nb_batches,
                           batch_size=cp.batch_size, radius=radius, seed=params.seed,
                           progress=progress)
            scores = res.scores.numpy().astype(float)
            med = float(np.median(scores))
            measurements.append(Measurement(
                metric="robustness.clever_u", value=med, unit=norm.value, higher_is_better=True,
                interval=median_interval(scores), sample_count=m,
                parameters={"norm": norm.value, "nb_batches": cp.nb_batches,
                            "batch_size": cp.batch_size, "radius": radius, "statistic": "median"},
                raw_key="samples",
            ))
            col = np.full(x.shape[0], np.nan)
            col[:m] = scores
            table[f"clever_u:{norm.value}"] = col
            out[norm.value] = CleverSummary.model_validate({"scores": scores.tolist(), "radius": radius,
                                                            **res.summary()})
        return out


def _curve_to_step(curve: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One attack's curve as a checkpoint step: its JSON facts and its per-sample arrays."""
    doc = {k: curve[k] for k in ("attack", "norm", "kind", "targeted", "params", "points", "warnings", "seconds",
                                 "queries", "example_eps")}
    doc["example_keys"] = sorted(curve.get("example", {}) or {})
    arrays: dict[str, np.ndarray] = {}
    for i, (f, d, p) in enumerate(zip(curve["fooled"], curve["distances"], curve["preds"], strict=True)):
        arrays[f"fooled{i}"], arrays[f"distance{i}"], arrays[f"pred{i}"] = f.numpy(), np.asarray(d), p.numpy()
    for k in doc["example_keys"]:
        arrays[f"example:{k}"] = np.asarray(curve["example"][k])
    return doc, arrays


def _curve_from_step(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The curve :func:`_curve_to_step` kept."""
    n = len(doc["points"])
    curve = {k: v for k, v in doc.items() if k != "example_keys"}
    curve["fooled"] = [torch.from_numpy(arrays[f"fooled{i}"]) for i in range(n)]
    curve["distances"] = [arrays[f"distance{i}"] for i in range(n)]
    curve["preds"] = [torch.from_numpy(arrays[f"pred{i}"]) for i in range(n)]
    if doc["example_keys"]:
        curve["example"] = {k: arrays[f"example:{k}"] for k in doc["example_keys"]}
    return curve


def _examples(x: torch.Tensor, out: Outcome, k: int) -> dict[str, np.ndarray] | None:
    """Up to ``k`` clean/adversarial pairs for the report, successful attacks first."""
    if k <= 0:
        return None
    order = torch.argsort((~out.success).to(torch.int8), stable=True)[:k]
    return {
        "index": order.numpy(),
        "clean": x.detach().cpu()[order].numpy(),
        "adv": out.x_adv[order].numpy(),
        "label": out.y[order].numpy(),
        "pred_clean": out.pred_clean[order].numpy(),
        "pred_adv": out.pred_adv[order].numpy(),
        "distance": out.distance[order].numpy(),
    }


def _masking_warnings(curves: Sequence[CurveSummary | Mapping[str, Any]]) -> list[str]:
    """Warn when one-step FGSM beats a multi-step fixed-eps attack (PGD, BIM: the ones declared iterative) at the
    same eps (a gradient-masking sign)."""
    warnings = []
    # read by key: the check passes its CurveSummary models, which answer c["attack"] as well as c.attack
    by = {(c["attack"], c["norm"], c["targeted"]): c for c in curves}
    for multi in names("evasion", iterative=True, kind=AttackKind.FIXED_EPS):
        for nrm in ("linf", "l2"):
            f, m = by.get(("fgsm", nrm, False)), by.get((multi, nrm, False))
            if not f or not m:
                continue
            fr = {p["eps"]: p["raw_robust_accuracy"] for p in f["points"]}
            for p in m["points"]:
                if p["eps"] in fr and fr[p["eps"]] is not None and p["raw_robust_accuracy"] is not None \
                        and fr[p["eps"]] + 1e-12 < p["raw_robust_accuracy"] - 0.02:
                    warnings.append(
                        f"FGSM beats {multi.upper()} at eps={p['eps']:g} ({nrm}): robust accuracy "
                        f"{fr[p['eps']]:.3f} vs {p['raw_robust_accuracy']:.3f}. Iterative attacks should "
                        "be at least as strong; suspect gradient masking or raise the steps."
                    )
    return warnings


__all__ = ["ATLAS_EVASION", "CleverParams", "CleverSummary", "CurveSummary", "PointSummary", "RobustnessCheck",
           "RobustnessParams", "RobustnessSummary", "TextCurveSummary", "TextRobustnessSummary"]
