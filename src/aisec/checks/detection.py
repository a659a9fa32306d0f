"""Detection check: how well does an input detector reject adversarial examples, and an adaptive attacker?

For each detector (:mod:`aisec.defences.detect`, registry family ``rejector``) the samples are split: the
first ``fit_fraction`` fit the detector (train it, for the activation detector, and set its threshold at
``fpr`` on clean inputs); the rest evaluate it. On the evaluation part:

- plain PGD (Linf, ``eps``) against the classifier alone gives the adversarial examples; the **rejection
  ROC** is clean inputs (negatives) vs the examples that fool the classifier (positives): AUC with DeLong's
  95% interval, and precision, recall (the detection rate) and F1 at the threshold;
- the **adaptive** attack (:func:`~aisec.defences.detect.adaptive.adaptive_pgd`: PGD on classifier and
  detector together, BPDA through squeezers) gives the adaptive detection rate — the number to quote;
- robust accuracy of the system classifier + detector, where a rejection counts as a defence on an
  adversarial input and as an error on a clean one: a sample is robust when its clean input is accepted
  and correct and its adversarial input is rejected or still correct. Clean accuracy is "accepted and
  correct".

Metrics (``detection.*``, parameters name the detector): ``auc``, ``precision``, ``recall``, ``f1``,
``false_positive_rate``, ``adaptive_detection_rate``, ``clean_accuracy``, ``robust_accuracy`` and
``adaptive_robust_accuracy``. ``aisec assess --detector feature-squeezing`` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.core.check import ConsoleLine, ConsoleTable, IntervalSummary, Result, Summary, require_same_classes
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import register_check
from aisec.core.stats import Interval, wilson
from aisec.core.target import Target, check_inputs
from aisec.core.types import REFERENCE_EPS, Capability, Norm

ATLAS_EVASION = ("AML.T0043.000", "AML.T0015")


class DetectionParams(BaseModel):
    """Options of the detection check."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    detectors: list[str] = Field(default_factory=lambda: ["feature-squeezing"],
                                 description="Detectors, each name or name:key=value,... (feature-squeezing, "
                                 "activation).")
    eps: float | None = Field(default=None, gt=0, description="Linf budget of both attacks (default: the reference "
                              "eps, 8/255).")
    steps: int = Field(default=20, ge=1, description="Steps of the plain PGD.")
    adaptive_steps: int = Field(default=40, ge=1, description="Steps of the adaptive attack.")
    adaptive_weight: float = Field(default=0.01, ge=0, description="λ: weight of the detector's score in the "
                                   "adaptive objective, in units of the clean scores' spread.")
    fpr: float = Field(default=0.05, gt=0, lt=1, description="False-positive rate the threshold is set at (a "
                       "detector spec's own fpr wins).")
    samples: int | None = Field(default=500, ge=8, description="Samples used: the first part fits, the rest evaluates.")
    fit_fraction: float = Field(default=0.5, gt=0, lt=1)
    batch_size: int = Field(default=256, ge=1)
    seed: int = 0

    @field_validator("detectors", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @field_validator("detectors")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from aisec.defences.detect import parse_detector

        if not v:
            raise ValueError("name at least one detector, e.g. feature-squeezing")
        for spec in v:
            try:
                parse_detector(spec)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v

    def budget(self) -> float:
        return self.eps if self.eps is not None else float(REFERENCE_EPS[Norm.LINF.value])


class DetectorSummary(Summary):
    """One detector's evaluation: its ROC, operating point, naive vs adaptive detection, system accuracy."""

    detector: str
    spec: str
    threshold: float
    eps: float
    fit_samples: int
    samples: int
    auc: float | None
    """None when plain PGD fooled the classifier on no sample (no positives: the ROC is undefined)."""
    auc_ci: IntervalSummary
    roc_fpr: list[float]
    roc_tpr: list[float]
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    adversarial: int
    """Examples of plain PGD that fool the classifier (the ROC's positives)."""
    adaptive_fooled: int
    adaptive_detection_rate: float
    adaptive_detection_ci: IntervalSummary
    undefended_clean_accuracy: float
    clean_accuracy: float
    """Of the system: accepted and correct."""
    undefended_robust_accuracy: float
    """The classifier alone under the plain PGD."""
    robust_accuracy: float
    adaptive_robust_accuracy: float
    adaptive_robust_ci: IntervalSummary
    seconds: float


class DetectionSummary(Summary):
    """One row per detector."""

    detectors: list[DetectorSummary]

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        rows = tuple((d.spec, "—" if d.auc is None else f"{d.auc:.3f} ({d.auc_ci.low:.3f}–{d.auc_ci.high:.3f})",
                      f"{d.recall:.3f}",
                      f"{d.adaptive_detection_rate:.3f}", f"{d.false_positive_rate:.3f}", f"{d.clean_accuracy:.3f}",
                      f"{d.robust_accuracy:.3f}", f"{d.adaptive_robust_accuracy:.3f}") for d in self.detectors)
        return [f"{model} on {dataset}: input detectors at Linf eps {self.detectors[0].eps:.4g}" if self.detectors
                else f"{model} on {dataset}: no detector ran",
                ConsoleTable("detection", ("detector", "AUC (95% CI)", "detected (PGD)", "detected (adaptive)",
                                           "clean rejected", "clean acc", "robust acc (PGD)",
                                           "robust acc (adaptive)"), rows)]


@register_check("detection", requires={Capability.GRADIENTS})
class DetectionCheck:
    """Input detectors: rejection ROC, precision/recall/F1, detection of plain and adaptive attacks."""

    Params = DetectionParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--detector", "Input detectors to evaluate (detection check), e.g. feature-squeezing,activation or "
             "feature-squeezing:bits=2; adds the detection check when --checks is not given.", kind="list"),
        Flag("--detect-eps", "Detection: Linf budget of the plain and adaptive attacks (default 8/255).",
             kind="float"),
        Flag("--detect-fpr", "Detection: share of clean inputs the threshold may reject (default 0.05).",
             kind="float"),
        Flag("--detect-count", "Detection: samples used, half to fit the detectors, half to evaluate (default 500).",
             kind="int"),
    )

    @staticmethod
    def from_flags(p: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        if f.get("detector"):
            p["detectors"] = list(f["detector"])
        if f.get("detect_eps") is not None:
            p["eps"] = f["detect_eps"]
        if f.get("detect_fpr") is not None:
            p["fpr"] = f["detect_fpr"]
        if f.get("detect_count") is not None:
            p["samples"] = f["detect_count"]
        return p

    def run(self, target: Target, data: Dataset, params: DetectionParams, *,
            progress: Progress = no_progress) -> Result:
        from aisec.defences.detect import parse_detector

        t0 = time.perf_counter()
        require_same_classes(target, data)
        x, y = take(data, params.samples, device=target.spec.device)
        check_inputs(target.spec, x, what=f"dataset '{data.info.name}'")
        k = round(x.shape[0] * params.fit_fraction)
        if k < 8 or x.shape[0] - k < 2:
            raise ConfigError(f"{x.shape[0]} samples cannot be split into a fitting part (≥ 8) and an evaluation "
                              f"part (≥ 2) at fit_fraction {params.fit_fraction}")
        measurements: list[Measurement] = []
        warnings: list[str] = []
        rows: list[DetectorSummary] = []
        tables: dict[str, dict[str, np.ndarray]] = {}
        for spec in params.detectors:
            det = parse_detector(spec)
            if "fpr" not in spec.partition(":")[2]:
                det.params = det.params.model_copy(update={"fpr": params.fpr})
            row, ms, table = self._one(det, target, x[:k], y[:k], x[k:], y[k:], params, progress, warnings)
            rows.append(row)
            measurements += ms
            tables[f"samples-{det.name}"] = table
        return Result(check="detection", measurements=measurements, params=params.model_dump(mode="json"),
                      summary=DetectionSummary(detectors=rows), tables=tables, warnings=warnings,
                      seconds=time.perf_counter() - t0, threats=ATLAS_EVASION)

    def _one(self, det: Any, target: Target, xf: torch.Tensor, yf: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             params: DetectionParams, progress: Progress, warnings: list[str]) -> tuple[
                 DetectorSummary, list[Measurement], dict[str, np.ndarray]]:
        from aisec.attacks.base import run_attack
        from aisec.defences.detect import GuardedTarget, adaptive_pgd
        from aisec.defences.detect.metrics import operating_point, roc_auc_delong, roc_points

        t0 = time.perf_counter()
        eps, bs = params.budget(), params.batch_size
        progress(f"detection: fit {det.name}", 0, 3)
        det.fit(target, xf, yf, eps=eps, seed=params.seed, batch_size=bs, progress=progress)
        system = GuardedTarget(target, det)
        n = int(x.shape[0])
        yc = y.cpu()
        with torch.no_grad():
            pred = torch.cat([target.predict(x[i : i + bs]).argmax(1).cpu() for i in range(0, n, bs)])
        correct = pred == yc
        clean_scores = det.score(x, batch_size=bs)
        rej_clean = clean_scores > det.calibrated()
        progress(f"detection: PGD on {det.name}", 1, 3)
        out = run_attack("pgd", target, x, y, {"norm": Norm.LINF, "eps": eps, "steps": params.steps},
                         batch_size=bs, seed=params.seed, pred_clean=pred)
        fooled = (out.pred_adv != yc) & correct
        adv_scores = det.score(out.x_adv.to(x.device), batch_size=bs)
        rej_adv = system.rejects(out.x_adv.to(x.device), batch_size=bs)
        neg, pos = clean_scores.numpy(), adv_scores[fooled].numpy()
        auc, auc_ci = roc_auc_delong(neg, pos)
        op = operating_point(neg, pos, det.calibrated())
        fpr, tpr = roc_points(neg, pos)
        progress(f"detection: adaptive attack on {det.name}", 2, 3)
        a_fooled = torch.zeros(n, dtype=torch.bool)
        a_rej = torch.zeros(n, dtype=torch.bool)
        idx = torch.nonzero(correct).squeeze(1)
        if idx.numel():
            ad = adaptive_pgd(det, x[idx.to(x.device)], y[idx.to(y.device)], eps=eps, steps=params.adaptive_steps,
                              weight=params.adaptive_weight, seed=params.seed, batch_size=bs)
            a_fooled[idx], a_rej[idx] = ad.fooled, ad.rejected
        k_ad, k_ad_det = int(a_fooled.sum()), int((a_fooled & a_rej).sum())
        accepted_ok = correct & ~rej_clean
        robust = accepted_ok & (rej_adv | (out.pred_adv == yc))
        robust_ad = accepted_ok & (a_rej | ~a_fooled)
        progress(f"detection: {det.name}", 3, 3)
        k_ok, k_rob, k_rob_ad = int(accepted_ok.sum()), int(robust.sum()), int(robust_ad.sum())
        pp = {"detector": det.label(), "attack": "pgd", "norm": "linf", "eps": eps, "fpr": det.params.fpr,
              "threshold": det.calibrated(), "fit_samples": int(xf.shape[0])}
        app = {**pp, "attack": "adaptive-pgd", "steps": params.adaptive_steps, "weight": params.adaptive_weight}

        def m(metric: str, value: float, ci: Interval | None, count: int, hib: bool,
              p: dict[str, Any] = pp) -> Measurement:
            return Measurement(metric=f"detection.{metric}", value=value, unit="fraction", higher_is_better=hib,
                               interval=ci, sample_count=count, parameters=p, raw_key=f"samples-{det.name}")

        ms = [
            *([m("auc", auc, auc_ci, op.positives + op.negatives, True)] if op.positives else []),
            m("precision", op.precision, op.precision_ci(), op.true_positives + op.false_positives, True),
            m("recall", op.recall, op.recall_ci(), op.positives, True),
            m("f1", op.f1, None, op.positives + op.negatives, True),
            m("false_positive_rate", op.false_positive_rate, op.fpr_ci(), op.negatives, False),
            *([m("adaptive_detection_rate", k_ad_det / k_ad, wilson(k_ad_det, k_ad), k_ad, True, app)] if k_ad else []),
            m("clean_accuracy", k_ok / n, wilson(k_ok, n), n, True),
            m("robust_accuracy", k_rob / n, wilson(k_rob, n), n, True),
            m("adaptive_robust_accuracy", k_rob_ad / n, wilson(k_rob_ad, n), n, True, app),
        ]
        row = DetectorSummary(
            detector=det.name, spec=det.label(), threshold=det.calibrated(), eps=eps, fit_samples=int(xf.shape[0]),
            samples=n, auc=auc if op.positives else None, auc_ci=IntervalSummary.from_interval(auc_ci), roc_fpr=fpr,
            roc_tpr=tpr,
            precision=op.precision, recall=op.recall, f1=op.f1, false_positive_rate=op.false_positive_rate,
            adversarial=op.positives, adaptive_fooled=k_ad, adaptive_detection_rate=k_ad_det / max(k_ad, 1),
            adaptive_detection_ci=IntervalSummary.from_interval(wilson(k_ad_det, k_ad)),
            undefended_clean_accuracy=int(correct.sum()) / n, clean_accuracy=k_ok / n,
            undefended_robust_accuracy=int((correct & ~fooled).sum()) / n, robust_accuracy=k_rob / n,
            adaptive_robust_accuracy=k_rob_ad / n,
            adaptive_robust_ci=IntervalSummary.from_interval(wilson(k_rob_ad, n)), seconds=time.perf_counter() - t0,
        )
        table = {"label": yc.numpy(), "pred_clean": pred.numpy(), "score_clean": clean_scores.numpy(),
                 "rejected_clean": rej_clean.numpy(), "pgd:pred": out.pred_adv.numpy(),
                 "pgd:score": adv_scores.numpy(), "pgd:rejected": rej_adv.numpy(),
                 "adaptive:fooled": a_fooled.numpy(), "adaptive:rejected": a_rej.numpy()}
        if not op.positives:
            warnings.append(f"{det.label()}: plain PGD (Linf eps {eps:g}) fooled the classifier on none of the {n} "
                            "evaluation samples, so the rejection ROC is undefined (no AUC recorded); raise the eps")
        if not k_ad:
            warnings.append(f"{det.label()}: the adaptive attack fooled the classifier on no sample; its detection "
                            "rate is undefined (not recorded)")
        return row, ms, table
