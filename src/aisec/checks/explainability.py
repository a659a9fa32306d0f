"""Explainability check: can the model's decisions be explained, and do the explanations mean something?

It explains ``samples`` predictions with one explainer (LIME by default; ``kernel_shap`` for
other black boxes, ``saliency`` / ``integrated_gradients`` for white boxes) and scores the
explanations, not just their existence:

- ``explainability.faithfulness_deletion`` / ``_insertion``: does deleting (inserting) the
  features the explanation ranks highest change the model's output faster than deleting
  (inserting) features in a random order? Normalised to [0, 1], 0.5 = no better than random.
- ``explainability.stability``: top-k agreement (Jaccard) with re-explanations under another
  seed (stochastic explainers) and under small input noise.
- ``explainability.explained_area``: the AI-SEC seed's explained area / total area, kept as a
  secondary, descriptive figure (it mostly reflects segment size and the number of features shown).

A random attribution is scored alongside as a control (``control``): its faithfulness must sit
near 0.5, or the check warns. Definitions: ``docs/explainability.md`` and
:mod:`aisec.metrics.faithfulness`. Explainability is a requirement rather than a threat, so the
evidence carries no ATLAS technique.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.checks._artefacts import explanation_artefacts
from aisec.core.artefacts import Artefact, is_image
from aisec.core.check import ConsoleLine, IntervalSummary, Result, Summary, require_same_classes
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get, register_check
from aisec.core.target import Target, check_inputs, require
from aisec.core.types import Modality
from aisec.explain import Attribution, black_box_alternatives, explain, handles, method_name, text_explainers
from aisec.metrics.faithfulness import (
    Faithfulness,
    bounded_mean_interval,
    deletion_insertion,
    explained_area,
    stability,
)


class ExplainabilityParams(BaseModel):
    """Options of the explainability check (CLI flags, YAML plans and Python share this model)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    explainer: str = Field(default="lime", description="lime, kernel_shap, saliency, integrated_gradients.")
    samples: int = Field(default=100, ge=1, description="How many predictions to explain and score.")
    num_samples: int = Field(default=1000, ge=10, description="LIME/KernelSHAP perturbations per explanation.")
    segmentation: Literal["grid", "slic", "quickshift"] = Field(
        default="grid", description="Image superpixels for LIME/KernelSHAP.")
    cell: int | None = Field(default=None, ge=1, description="Grid cell side in pixels (default: ≤ 8 cells a side).")
    label: Literal["predicted", "true"] = Field(default="predicted", description="Which class to explain.")
    steps: int = Field(default=10, ge=2, description="Points on the deletion/insertion curves (minus one).")
    random_orders: int = Field(default=10, ge=1, description="Random feature orders each explanation is compared with.")
    baseline: str | float = Field(default="auto",
                                  description="Value of a deleted feature: auto, low, mean, blur, a number.")
    top_k: float = Field(default=0.1, gt=0, description="Stability: top features compared (fraction, or a count ≥ 1).")
    stability_samples: int = Field(default=20, ge=0, description="Samples re-explained for stability (0 = skip).")
    repeats: int = Field(default=2, ge=1, description="Re-explanations per stability kind.")
    noise: float = Field(default=0.02, ge=0, description="Stability: input noise σ as a fraction of the value range.")
    area_features: int = Field(default=5, ge=1, description="Explained area: how many top features (the seed used 5).")
    control: bool = Field(default=True, description="Also score a random attribution (must come out ≈ 0.5).")
    examples: int = Field(default=6, ge=0, description="Explanations kept for the report.")
    save_images: int | None = Field(
        default=None, ge=0, description="Image inputs: explained samples written as PNGs (input | attribution) to "
        "artefacts/explanations/ (default: every explained sample; 0 = none).")
    batch_size: int = Field(default=4096, ge=1, description="Inputs per forward pass.")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra explainer options, e.g. kernel_width.")
    seed: int = 0

    @field_validator("explainer")
    @classmethod
    def _known(cls, v: str) -> str:
        return method_name(v)


class FaithfulnessScore(Summary):
    """Deletion or insertion: the mean faithfulness score (0.5 = random) with its CI, and the mean raw
    curve areas of the explanation and of random feature orders."""

    mean: float
    ci: IntervalSummary
    auc: float
    auc_random: float


class FaithfulnessSummary(Summary):
    """Both faithfulness scores, the mean curves (``deletion``, ``deletion_random``, ``insertion``,
    ``insertion_random``) over ``fractions`` of the features, and the curves' settings."""

    deletion: FaithfulnessScore
    insertion: FaithfulnessScore
    fractions: list[float]
    curves: dict[str, list[float]]
    params: dict[str, Any]


class MeanWithCI(Summary):
    """A mean over samples with its 95% interval."""

    mean: float
    ci: IntervalSummary


def _absent(v: object) -> bool:
    return v is None


class StabilitySummary(Summary):
    """Top-k Jaccard agreement with re-explanations: under another seed (``rerun``; absent for a
    deterministic explainer) and under input noise, against ``chance``."""

    chance: float
    samples: int
    top_k: float
    rerun: MeanWithCI | None = Field(default=None, exclude_if=_absent)
    noise: MeanWithCI


class ExplainedAreaSummary(MeanWithCI):
    """The AI-SEC seed's explained area over the top ``area_features`` positive features."""

    area_features: int


class ExplainabilitySummary(Summary):
    """Faithfulness (and that of the random control), stability, explained area, cost; for text and
    tabular data the examples as dicts (``spans`` and ``lime`` for text, ``features`` for tables), which
    are absent for images (their examples are the result's images)."""

    explainer: str
    modality: str
    samples: int
    classes: list[str]
    explainer_params: dict[str, Any]
    seconds_explain: float
    seconds_per_explanation: float
    faithfulness: FaithfulnessSummary
    control: FaithfulnessSummary | None
    stability: StabilitySummary | None
    explained_area: ExplainedAreaSummary
    surrogate_r2_median: float | None
    queries: int
    examples: list[dict[str, Any]] | None = Field(default=None, exclude_if=_absent)

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """Faithfulness by deletion and by insertion, with CIs."""
        return [f"explainability faithfulness ({kind}): {v.mean:.3f} ({v.ci.low:.3f}–{v.ci.high:.3f}); "
                "0.5 = no better than random"
                for kind, v in (("deletion", self.faithfulness.deletion), ("insertion", self.faithfulness.insertion))]


@register_check("explainability")
class ExplainabilityCheck:
    """Explainability: LIME/SHAP/gradient explanations scored by faithfulness (vs random), stability and area."""

    Params = ExplainabilityParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--explainer", "Explainability: which explainer to score (default lime).", kind="choice",
             choices_from="explainer"),
        Flag("--explain-samples", "Explainability: how many samples to explain.", kind="int"),
        Flag("--num-samples", "Explainability: LIME/SHAP perturbations per explanation.", kind="int"),
        Flag("--segmentation", "Explainability: image segmentation for LIME.", kind="choice",
             choices=("grid", "slic", "quickshift")),
    )

    @staticmethod
    def from_flags(ex: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The check's plan entry ``ex`` with the given flags (None = not given) applied."""
        for flag, key in (("explainer", "explainer"), ("explain_samples", "samples"),
                          ("num_samples", "num_samples"), ("segmentation", "segmentation")):
            if f[flag] is not None:
                ex[key] = f[flag]
        return ex

    def run(
        self,
        target: Target,
        data: Dataset,
        params: ExplainabilityParams,
        *,
        progress: Progress = no_progress,
    ) -> Result:
        t0 = time.perf_counter()
        spec = target.spec
        require_same_classes(target, data)
        info = get("explainer", params.explainer)
        name = info.name
        require(target, info.requires, what=f"explainer '{name}'", alternatives=black_box_alternatives(info))
        text = spec.modality is Modality.TEXT
        if text and not handles(info, Modality.TEXT):
            raise ConfigError(f"explainer '{name}' does not explain text; use one of {text_explainers()}")
        x, y = take(data, params.samples, device="cpu")
        if not text:
            check_inputs(spec, x, what=f"dataset '{data.info.name}'")
        n = int(x.shape[0])
        opts = self._options(params, target, data)
        label = y if params.label == "true" else None
        attr = explain(target, x, method=name, label=label, seed=params.seed, batch_size=params.batch_size,
                       progress=progress, **opts)
        progress("faithfulness", 0, 1)
        faith = deletion_insertion(target, x, attr, steps=params.steps, random_orders=params.random_orders,
                                   baseline=params.baseline, seed=params.seed, batch_size=params.batch_size)
        progress("faithfulness", 1, 1)
        control = self._control(target, x, attr, params) if params.control else None
        m = min(params.stability_samples, n)
        stab = None
        if m:
            progress("stability", 0, 1)
            stab = stability(target, x[:m], attr.head(m), top_k=_top_k(params.top_k), noise=params.noise,
                             repeats=params.repeats, seed=params.seed, batch_size=params.batch_size, **opts)
            progress("stability", 1, 1)
        area = explained_area(attr, params.area_features, params.cell)
        pred = attr.probability  # probability of the explained class
        with torch.no_grad():
            from aisec.explain import predict_batched

            probs = predict_batched(target, x.to(spec.device), params.batch_size)
        pred_class = probs.argmax(1).numpy()

        common = {"explainer": name, "samples": n, "label": params.label,
                  **({"num_samples": params.num_samples} if info.perturbation else {}),
                  **({"segmentation": params.segmentation} if spec.modality is Modality.IMAGE
                     and info.perturbation else {})}
        curve = {"steps": params.steps, "random_orders": params.random_orders, "baseline": params.baseline}
        measurements = [
            Measurement(metric="explainability.faithfulness_deletion", value=float(faith.score_deletion.mean()),
                        unit="probability", higher_is_better=True,
                        interval=bounded_mean_interval(faith.score_deletion), sample_count=n,
                        parameters={**common, **curve}, raw_key="samples"),
            Measurement(metric="explainability.faithfulness_insertion", value=float(faith.score_insertion.mean()),
                        unit="probability", higher_is_better=True,
                        interval=bounded_mean_interval(faith.score_insertion), sample_count=n,
                        parameters={**common, **curve}, raw_key="samples"),
        ]
        table: dict[str, np.ndarray] = {
            "index": np.arange(n), "label": y.numpy(), "pred": pred_class,
            "explained_class": attr.label.numpy(),
            "probability": pred.numpy() if pred is not None else np.full(n, np.nan),
            "auc_deletion": faith.auc_deletion, "auc_deletion_random": faith.auc_deletion_random.mean(1),
            "auc_insertion": faith.auc_insertion, "auc_insertion_random": faith.auc_insertion_random.mean(1),
            "faithfulness_deletion": faith.score_deletion, "faithfulness_insertion": faith.score_insertion,
            "explained_area": area,
        }
        if attr.score is not None and np.isfinite(attr.score).any():
            table["surrogate_r2"] = attr.score
        stab_summary: StabilitySummary | None = None
        if stab is not None:
            by_kind: dict[str, MeanWithCI] = {}
            kinds = [("noise", stab.noise, {"noise": params.noise})]
            if stab.rerun is not None:
                kinds.insert(0, ("rerun", stab.rerun, {}))
            for kind, vals, extra in kinds:
                col = np.full(n, np.nan)
                col[:m] = vals
                table[f"stability_{kind}"] = col
                ci = bounded_mean_interval(vals)
                by_kind[kind] = MeanWithCI(mean=float(vals.mean()), ci=IntervalSummary.from_interval(ci))
                measurements.append(Measurement(
                    metric="explainability.stability", value=float(vals.mean()), unit="jaccard",
                    higher_is_better=True, interval=ci, sample_count=m,
                    parameters={**common, "samples": m, "perturbation": kind, "top_k": params.top_k,
                                "repeats": params.repeats, **extra},
                    raw_key="samples"))
            stab_summary = StabilitySummary(chance=stab.chance, samples=m, top_k=params.top_k,
                                            rerun=by_kind.get("rerun"), noise=by_kind["noise"])
        measurements.append(Measurement(
            metric="explainability.explained_area", value=float(area.mean()), unit="fraction",
            higher_is_better=True, interval=bounded_mean_interval(area), sample_count=n,
            parameters={**common, "area_features": params.area_features}, raw_key="samples"))

        warnings = self._warnings(faith, control, attr, name)
        images: dict[str, dict[str, np.ndarray]] = {}
        examples: list[dict[str, Any]] | None = None
        k = min(params.examples, n)
        if k:
            if control is not None:
                table["control_faithfulness_deletion"] = control.score_deletion
                table["control_faithfulness_insertion"] = control.score_insertion
            if spec.modality is Modality.IMAGE and x.ndim == 4:
                images["examples"] = {
                    "index": np.arange(k), "x": x[:k].numpy(), "attribution": attr.values[:k].numpy(),
                    "label": y[:k].numpy(), "pred": pred_class[:k], "explained": attr.label[:k].numpy(),
                    "probability": table["probability"][:k],
                    **({"groups": attr.groups[:k, 0].numpy()} if attr.groups is not None else {}),
                }
            elif text:
                examples = _text_examples(attr, y, pred_class, table["probability"], k,
                                          [spec.class_name(c) for c in range(spec.num_classes)], probs[:k].numpy())
            else:
                examples = _tabular_examples(attr, x, y, pred_class, table["probability"], k)
        artefacts: list[Artefact] = []
        saving = n if params.save_images is None else min(params.save_images, n)
        if saving and spec.modality is Modality.IMAGE and is_image(tuple(x.shape[1:])):
            artefacts = explanation_artefacts(name, {
                "index": np.arange(saving), "x": x[:saving].numpy(), "attribution": attr.values[:saving].numpy(),
                "label": y[:saving].numpy(), "pred": pred_class[:saving], "explained": attr.label[:saving].numpy(),
            }, spec.value_range)
        summary = ExplainabilitySummary(
            explainer=name, modality=spec.modality.value, samples=n, classes=list(data.info.classes),
            explainer_params=_jsonable_params(attr.params), seconds_explain=attr.seconds,
            seconds_per_explanation=attr.seconds / max(n, 1),
            faithfulness=_faith_summary(faith),
            control=_faith_summary(control) if control is not None else None,
            stability=stab_summary,
            explained_area=ExplainedAreaSummary(mean=float(area.mean()),
                                                ci=IntervalSummary.from_interval(bounded_mean_interval(area)),
                                                area_features=params.area_features),
            surrogate_r2_median=float(np.nanmedian(table["surrogate_r2"])) if "surrogate_r2" in table else None,
            queries=target.queries, examples=examples,
        )
        return Result(
            check="explainability", measurements=measurements, params=params.model_dump(mode="json"),
            summary=summary, tables={"samples": table}, images=images, artefacts=artefacts, warnings=warnings,
            seconds=time.perf_counter() - t0, threats=(),
        )

    @staticmethod
    def _options(params: ExplainabilityParams, target: Target, data: Dataset) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        modality = target.spec.modality
        if get("explainer", params.explainer).perturbation:  # num_samples perturbations per explanation
            opts["num_samples"] = params.num_samples
            if modality is Modality.IMAGE:
                opts["segmentation"] = params.segmentation
                if params.cell is not None and params.segmentation == "grid":
                    opts["cell"] = params.cell
            elif modality is Modality.TABULAR:
                # The statistics LIME samples from: the assessed dataset (all of it, not only `samples`).
                opts["training_data"] = take(data, None, device="cpu")[0]
        return {**opts, **params.options}

    @staticmethod
    def _control(target: Target, x: torch.Tensor, attr: Attribution, params: ExplainabilityParams) -> Faithfulness:
        """Faithfulness of a random attribution of the same inputs and classes."""
        seed = params.seed + 20_000
        if attr.texts is not None:
            rng = np.random.default_rng(seed)
            rnd = Attribution(values=torch.zeros_like(attr.values), label=attr.label, method="random",
                              params={"seed": seed}, seconds=0.0, groups=attr.groups,
                              group_weights=[rng.random(len(w)) for w in attr.group_weights or []],
                              tokens=attr.tokens, texts=attr.texts)
        else:
            rnd = explain(target, x, method="random", label=attr.label, seed=seed, batch_size=params.batch_size)
        return deletion_insertion(target, x, rnd, steps=params.steps, random_orders=params.random_orders,
                                  baseline=params.baseline, seed=params.seed + 1, batch_size=params.batch_size)

    @staticmethod
    def _warnings(faith: Faithfulness, control: Faithfulness | None, attr: Attribution, name: str) -> list[str]:
        out = []
        for kind, scores in (("deletion", faith.score_deletion), ("insertion", faith.score_insertion)):
            ci = bounded_mean_interval(scores)
            if ci.low <= 0.5:
                out.append(
                    f"{name} explanations are not clearly more faithful than random feature orders by {kind} "
                    f"(score {scores.mean():.3f}, 95% CI {ci.low:.3f}–{ci.high:.3f} includes 0.5 or less): they "
                    "should not be relied on to say why the model decides."
                )
        if control is not None:
            for kind, scores in (("deletion", control.score_deletion), ("insertion", control.score_insertion)):
                ci = bounded_mean_interval(scores)
                if not ci.contains(0.5):
                    out.append(
                        f"the random-attribution control scored {scores.mean():.3f} by {kind} (95% CI "
                        f"{ci.low:.3f}–{ci.high:.3f}, expected 0.5); with few samples this happens by chance 1 "
                        "time in 20, otherwise the curves are biased — raise samples or random_orders."
                    )
        if attr.score is not None and np.isfinite(attr.score).any() and float(np.nanmedian(attr.score)) < 0.3:
            out.append(
                f"LIME's local linear surrogate fits poorly (median R² {float(np.nanmedian(attr.score)):.2f}); "
                "its weights describe the model's behaviour near these inputs only loosely. Try more num_samples "
                "or coarser segments."
            )
        return out


def _top_k(v: float) -> float | int:
    return v if v < 1 else int(v)


def _faith_summary(f: Faithfulness) -> FaithfulnessSummary:
    return FaithfulnessSummary(
        deletion=FaithfulnessScore(mean=float(f.score_deletion.mean()),
                                   ci=IntervalSummary.from_interval(bounded_mean_interval(f.score_deletion)),
                                   auc=float(f.auc_deletion.mean()), auc_random=float(f.auc_deletion_random.mean())),
        insertion=FaithfulnessScore(mean=float(f.score_insertion.mean()),
                                    ci=IntervalSummary.from_interval(bounded_mean_interval(f.score_insertion)),
                                    auc=float(f.auc_insertion.mean()),
                                    auc_random=float(f.auc_insertion_random.mean())),
        fractions=f.fractions.tolist(),
        curves={"deletion": f.deletion.mean(0).tolist(), "deletion_random": f.deletion_random.mean(0).tolist(),
                "insertion": f.insertion.mean(0).tolist(), "insertion_random": f.insertion_random.mean(0).tolist()},
        params=f.params,
    )


def _jsonable_params(p: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in p.items()}


def _tabular_examples(attr: Attribution, x: torch.Tensor, y: torch.Tensor, pred: np.ndarray,
                      prob: np.ndarray, k: int, top: int = 10) -> list[dict[str, Any]]:
    out = []
    for i in range(k):
        w = attr.values[i].reshape(-1).double().numpy()
        v = x[i].reshape(-1).double().numpy()
        order = np.argsort(-np.abs(w), kind="stable")[:top]
        out.append({"index": i, "label": int(y[i]), "pred": int(pred[i]), "explained": int(attr.label[i]),
                    "probability": float(prob[i]),
                    "features": [{"feature": int(j), "name": f"feature {int(j)}", "value": float(v[j]),
                                  "weight": float(w[j])} for j in order]})
    return out


def _text_examples(attr: Attribution, y: torch.Tensor, pred: np.ndarray, prob: np.ndarray, k: int,
                   class_names: list[str], probs: np.ndarray) -> list[dict[str, Any]]:
    """Per example the text cut into (piece, weight) spans, and what LIME's HTML page needs."""
    from lime.lime_text import IndexedString

    assert attr.texts is not None and attr.group_weights is not None and attr.tokens is not None
    split = attr.params.get("split_expression", r"\W+")
    out = []
    for i in range(k):
        indexed = IndexedString(attr.texts[i], bow=True, split_expression=split)
        w = np.asarray(attr.group_weights[i], dtype=float)
        vocab = {t: j for j, t in enumerate(indexed.inverse_vocab)}
        spans = [[piece, float(w[vocab[piece]]) if piece in vocab else 0.0] for piece in indexed.as_list]
        out.append({"index": i, "label": int(y[i]), "pred": int(pred[i]), "explained": int(attr.label[i]),
                    "probability": float(prob[i]), "text": attr.texts[i], "spans": spans,
                    "lime": {"words": list(indexed.inverse_vocab), "weights": w.tolist(),
                             "class_names": class_names, "predict_proba": probs[i].tolist(),
                             "split_expression": split}})
    return out
