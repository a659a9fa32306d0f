"""SPADE check: a black-box spectral robustness score and the samples it ranks least robust.

Builds k-NN graphs on the inputs and on the model's outputs for N samples and reports the SPADE score
λ_max (:mod:`aisec.metrics.spade`; larger = less robust), its mapping onto ``[0, 1]``
(:func:`~aisec.metrics.spade.robustness_index`, ``min(1, 1/λ_max)``, 1 = most robust), and the node
scores that rank the samples, with the top-N least robust as images (PNG artefacts) or texts. Needs only
the target's probabilities; the output graph is built on centred log-probabilities (equal to the
centred logits) by default, or on the probabilities themselves.

When the target also gives gradients, the ranking is checked against two per-sample robustness
measures on a random subset: CLEVER-u scores (:mod:`aisec.metrics.clever`) and DeepFool's minimal L2
adversarial distances. The agreement is Spearman's ρ between *minus* the node score and the measure
(positive: the samples SPADE calls least robust are those with the smaller distance), with a
percentile-bootstrap interval (:mod:`aisec.metrics.rank_agreement`). Text targets: the input graph is
built on the mean token embedding of each text (the target's embedding layer).

Metrics: ``spade.score``, ``spade.robustness_index``, ``spade.agreement_deepfool``,
``spade.agreement_clever``. Threat: ATLAS AML.T0043 (craft adversarial data).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.core.artefacts import Artefact, is_image, png_bytes, side_by_side, to_rgb
from aisec.core.check import ConsoleLine, ConsoleTable, IntervalSummary, Result, Summary, require_same_classes
from aisec.core.dataset import Dataset, take
from aisec.core.errors import CapabilityError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import register_check
from aisec.core.stats import Interval
from aisec.core.target import Target
from aisec.core.types import Capability, Modality
from aisec.metrics.rank_agreement import spearman_agreement
from aisec.metrics.spade import SpadeResult, centred_log_probabilities, robustness_index, spade

ATLAS_SPADE = ("AML.T0043",)
#: How the raw score is put on [0, 1], in words (the report and docs quote it).
MAPPING = "min(1, 1/score): 1 when the model keeps every k-NN neighbourhood (score 1), 1/s for a score s > 1"


class SpadeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    samples: int | None = Field(default=None, ge=3, description="Use the first N samples (default: all).")
    k: int = Field(default=10, ge=1, description="Neighbours per sample in both k-NN graphs.")
    num_eigs: int = Field(default=2, ge=1, description="Generalised eigenpairs behind the node scores.")
    outputs: Literal["logits", "probabilities"] = Field(
        default="logits", description="Output graph on centred log-probabilities (= centred logits) or probabilities.")
    top: int = Field(default=8, ge=0, description="Least robust samples to report (and save as images).")
    agreement_samples: int = Field(default=50, ge=0, description="Random samples for the CLEVER and DeepFool "
                                   "agreement (needs gradients; 0: skip).")
    clever_batches: int = Field(default=10, ge=2)
    clever_batch_size: int = Field(default=32, ge=2)
    deepfool_steps: int = Field(default=50, ge=1)
    bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples for the Spearman intervals.")
    batch_size: int = Field(default=256, ge=1)
    seed: int = 0


class LeastRobustSample(BaseModel):
    """One of the samples with the highest node scores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    node_score: float
    label: int
    predicted: int
    text: str | None = None


class AgreementSummary(BaseModel):
    """Spearman's ρ between −node score and a per-sample robustness measure (``deepfool``, ``clever``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: str
    rho: float | None
    ci: IntervalSummary | None
    n: int
    detail: str


class SpadeSummary(Summary):
    """The SPADE score, its [0, 1] index, the graphs' facts, the least robust samples and the agreement."""

    score: float
    robustness_index: float
    mapping: str = MAPPING
    n: int
    k: int
    num_eigs: int
    outputs: str
    inputs: str = "inputs"
    """What the input graph is built on: ``inputs`` (flattened) or ``mean token embeddings`` (texts)."""
    eigenvalues: list[float]
    bridges_in: int
    bridges_out: int
    solver: str
    least_robust: list[LeastRobustSample]
    agreement: list[AgreementSummary] = Field(default_factory=list)
    agreement_note: str | None = None

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        lines: list[ConsoleLine] = [
            f"SPADE score {self.score:.4g} on {self.n} samples (k={self.k}, outputs: {self.outputs}); "
            f"robustness index {self.robustness_index:.3f} = {MAPPING.split(':')[0]}",
        ]
        if self.least_robust:
            ids = ", ".join(f"#{s.index}" for s in self.least_robust)
            lines.append(f"least robust samples (highest node score first): {ids}")
        if self.agreement:
            rows = tuple((a.reference, "—" if a.rho is None else f"{a.rho:+.3f}",
                          "—" if a.ci is None else f"{a.ci.low:+.3f}–{a.ci.high:+.3f}", str(a.n))
                         for a in self.agreement)
            lines.append(ConsoleTable(title="SPADE ranking vs per-sample robustness (Spearman ρ, >0 = agree)",
                                      columns=("measure", "rho", "95% CI", "n"), rows=rows))
        elif self.agreement_note:
            lines.append(f"ranking agreement not measured: {self.agreement_note}")
        return lines


def _features(target: Target, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """What the input graph is built on: the flattened inputs, or a text's mean token embedding."""
    if target.spec.modality is not Modality.TEXT:
        return x.reshape(x.shape[0], -1).double().cpu().numpy()
    from aisec.attacks.text.base import as_text_target, to_token_ids

    tt = as_text_target(target, what="the SPADE check")
    pad = getattr(getattr(tt, "tokenizer", None), "pad_token_id", None)
    out = []
    with torch.no_grad():
        for i in range(0, int(x.shape[0]), batch_size):
            ids = to_token_ids(tt, x[i : i + batch_size])
            emb = tt.embed(ids).float()
            mask = (ids != pad).float()[..., None] if pad is not None else torch.ones_like(emb[..., :1])
            out.append(((emb * mask).sum(1) / mask.sum(1).clamp_min(1.0)).cpu())
    return torch.cat(out).double().numpy()


def _probabilities(target: Target, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([target.predict(x[i : i + batch_size]).cpu().float()
                          for i in range(0, int(x.shape[0]), batch_size)])


@register_check("spade", requires={Capability.PROBABILITIES})
class SpadeCheck:
    """SPADE (Cheng et al., ICML 2021): black-box spectral robustness score and least robust samples.

    Needs only the target's probabilities; the agreement with CLEVER and DeepFool also needs gradients."""

    Params = SpadeParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--spade-samples", "SPADE: use the first N samples (default: all).", kind="int"),
        Flag("--spade-k", "SPADE: neighbours per sample in the k-NN graphs (default 10).", kind="int"),
        Flag("--spade-agreement", "SPADE: samples for the CLEVER/DeepFool ranking agreement (default 50; 0: skip).",
             kind="int"),
    )

    @staticmethod
    def from_flags(p: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The samples, the k-NN graphs' k and the agreement's sample count."""
        for flag, key in (("spade_samples", "samples"), ("spade_k", "k"), ("spade_agreement", "agreement_samples")):
            if f.get(flag) is not None:
                p[key] = f[flag]
        return p

    def run(self, target: Target, data: Dataset, params: Any, *, progress: Progress = no_progress) -> Result:
        p = params if isinstance(params, SpadeParams) else SpadeParams(**(params or {}))
        t0 = time.perf_counter()
        require_same_classes(target, data)
        if target.spec.has(Capability.LABELS_ONLY):
            raise CapabilityError(f"the SPADE check needs the target's probabilities; '{target.spec.name}' "
                                  "answers with labels only, whose k-NN graph is one clique per class")
        x, y = take(data, p.samples)
        progress("spade: outputs", 0, 4)
        probs = _probabilities(target, x, p.batch_size)
        out = centred_log_probabilities(probs.numpy()) if p.outputs == "logits" else probs.double().numpy()
        progress("spade: graphs and eigenpairs", 1, 4)
        res = spade(_features(target, x, p.batch_size), out, k=p.k, num_eigs=min(p.num_eigs, max(1, len(x) - 2)),
                    seed=p.seed)
        pred = probs.argmax(1)
        progress("spade: agreement", 2, 4)
        agreement, note, extra = self._agreement(target, x, y, res, p, progress)
        progress("spade", 4, 4)
        index_ = robustness_index(res.score)
        pp = {"k": res.k, "num_eigs": int(res.eigenvalues.size), "outputs": p.outputs, "samples": res.n}
        ms = [
            Measurement(metric="spade.score", value=res.score, unit="ratio", higher_is_better=False,
                        sample_count=res.n, parameters=pp, raw_key="samples"),
            Measurement(metric="spade.robustness_index", value=index_, unit="fraction", higher_is_better=True,
                        sample_count=res.n, parameters={**pp, "mapping": "min(1, 1/score)"}, raw_key="samples"),
        ]
        how = {"deepfool": {"norm": "l2", "steps": p.deepfool_steps},
               "clever": {"norm": "l2", "nb_batches": p.clever_batches, "batch_size": p.clever_batch_size}}
        for a in agreement:
            if a.rho is None:
                continue
            ms.append(Measurement(
                metric=f"spade.agreement_{a.reference}", value=a.rho, unit="spearman_rho", higher_is_better=True,
                interval=None if a.ci is None else _interval(a.ci), sample_count=a.n,
                parameters={**pp, "reference": a.reference, **how[a.reference], "bootstrap": p.bootstrap},
                raw_key="samples"))
        order = res.ranking()
        top = order[: p.top]
        texts = _texts(x, top) if data.info.modality is Modality.TEXT else None
        least = [LeastRobustSample(index=int(i), node_score=float(res.node_scores[i]), label=int(y[i]),
                                   predicted=int(pred[i]), text=None if texts is None else texts[j])
                 for j, i in enumerate(top)]
        rank = np.empty(res.n, dtype=np.int64)
        rank[order] = np.arange(1, res.n + 1)
        table = {"index": np.arange(res.n, dtype=np.int64), "node_score": res.node_scores, "rank": rank,
                 "y": y.cpu().numpy().astype(np.int64), "y_pred": pred.numpy().astype(np.int64), **extra}
        images: dict[str, dict[str, np.ndarray]] = {}
        artefacts: list[Artefact] = []
        if top.size and is_image(tuple(x.shape[1:])):
            xi = x[torch.as_tensor(top)].float().cpu().numpy()
            images["least_robust"] = {"x": xi, "index": top.astype(np.int64), "label": table["y"][top],
                                      "pred": table["y_pred"][top], "value": res.node_scores[top]}
            for j, i in enumerate(top):
                artefacts.append(Artefact(
                    path=f"spade/least-robust-{j + 1}-sample-{int(i)}.png",
                    data=png_bytes(side_by_side([to_rgb(xi[j], target.spec.value_range)])), kind="spade-image",
                    description=f"sample {int(i)}, rank {j + 1} of {res.n} by SPADE node score "
                    f"({res.node_scores[i]:.3f}): label {int(y[i])}, predicted {int(pred[i])}"))
        warnings = []
        if res.bridges_out:
            warnings.append(f"the output k-NN graph fell into separate clusters; {res.bridges_out} shortest edge(s) "
                            "joined them, without which the SPADE score would be infinite")
        summary = SpadeSummary(score=res.score, robustness_index=index_, n=res.n, k=res.k,
                               num_eigs=int(res.eigenvalues.size), outputs=p.outputs,
                               inputs="mean token embeddings" if target.spec.modality is Modality.TEXT else "inputs",
                               eigenvalues=[float(v) for v in res.eigenvalues], bridges_in=res.bridges_in,
                               bridges_out=res.bridges_out, solver=res.solver, least_robust=least,
                               agreement=agreement, agreement_note=note)
        return Result(check="spade", measurements=ms, params=p.model_dump(mode="json"), summary=summary,
                      tables={"samples": table}, images=images, artefacts=artefacts, warnings=warnings,
                      seconds=time.perf_counter() - t0, threats=ATLAS_SPADE)

    @staticmethod
    def _agreement(target: Target, x: torch.Tensor, y: torch.Tensor, res: SpadeResult, p: SpadeParams,
                   progress: Progress) -> tuple[list[AgreementSummary], str | None, dict[str, np.ndarray]]:
        """CLEVER and DeepFool on a random subset and their Spearman agreement with the node scores."""
        if p.agreement_samples == 0:
            return [], "agreement_samples is 0", {}
        if not target.spec.has(Capability.GRADIENTS):
            return [], (f"'{target.spec.name}' gives no gradients, which CLEVER and DeepFool need (SPADE itself does "
                        "not)"), {}
        if target.spec.modality is Modality.TEXT:
            return [], "CLEVER and DeepFool perturb continuous inputs, not texts", {}
        from aisec.attacks.base import run_attack
        from aisec.metrics.clever import clever_u

        m = min(p.agreement_samples, res.n)
        sub = np.sort(np.random.default_rng(p.seed).choice(res.n, m, replace=False))
        xs, ys = x[torch.as_tensor(sub)].float(), y[torch.as_tensor(sub)].long()
        df = run_attack("deepfool", target, xs, ys, {"norm": "l2", "steps": p.deepfool_steps}, seed=p.seed)
        dist = df.distance.double().numpy().copy()
        dist[~df.success.numpy()] = math.inf  # not fooled within the steps: at least as robust as any fooled one
        progress("spade: agreement (CLEVER)", 3, 4)
        cl = clever_u(target, xs, norm="l2", nb_batches=p.clever_batches, batch_size=p.clever_batch_size,
                      seed=p.seed)
        clever = cl.scores.double().numpy()
        neg = -res.node_scores[sub]
        out = []
        for ref, vals, detail in (
            ("deepfool", dist, f"minimal L2 distance, {p.deepfool_steps} steps; {int(df.success.sum())}/{m} fooled"),
            ("clever", clever, f"CLEVER-u L2, {p.clever_batches}x{p.clever_batch_size} points, radius {cl.radius:g}"),
        ):
            a = spearman_agreement(neg, vals, resamples=p.bootstrap, seed=p.seed)
            ok = math.isfinite(a.rho)
            ci = IntervalSummary.from_interval(a.interval) if ok and math.isfinite(a.interval.low) else None
            out.append(AgreementSummary(reference=ref, rho=a.rho if ok else None, ci=ci, n=a.n, detail=detail))
        cols = {"deepfool_distance": np.full(res.n, math.nan), "clever": np.full(res.n, math.nan)}
        cols["deepfool_distance"][sub] = dist
        cols["clever"][sub] = clever
        return out, None, cols


def _interval(ci: IntervalSummary) -> Interval:
    return Interval(low=ci.low, high=ci.high, level=ci.level, method=ci.method)


def _texts(x: torch.Tensor, idx: np.ndarray) -> list[str] | None:
    """The texts at ``idx`` when the data holds UTF-8 bytes (aisec's text datasets), else None."""
    if x.dtype != torch.uint8:
        return None
    from aisec.data.text import decode_texts

    return decode_texts(x[torch.as_tensor(idx)])

