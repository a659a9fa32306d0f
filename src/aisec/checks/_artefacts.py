"""The files the checks leave behind (:mod:`aisec.core.artefacts`), built from what each check computed.

- robustness: ``adversarial/<attack>-<norm>-<eps>.npz`` per attack at the reference eps, and for images a
  PNG per sample (clean | adversarial | amplified difference) in ``adversarial/<attack>-<norm>-<eps>/``;
- explainability: ``explanations/<method>-<id>.png`` (the input | the attribution over it);
- poisoning: ``poisoned-train.npz``, the poisoned training set a victim was trained on;
- extraction: ``surrogate.safetensors``, the surrogate's weights with the architecture in the header.

Sample ids are the ``index`` (robustness, explainability) or ``train_index`` (poisoning) of the check's
``samples/*.csv`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from aisec.attacks.base import Outcome
from aisec.core.artefacts import (
    Artefact,
    amplified_difference,
    csv_bytes,
    eps_name,
    heat_overlay,
    is_image,
    npz_bytes,
    png_bytes,
    safe_name,
    side_by_side,
    to_rgb,
)
from aisec.core.target import TargetSpec
from aisec.core.types import Norm

#: The budgets adversarial examples are saved at: the reference eps the default policy reads
#: (:class:`aisec.policy.properties.Reference`, RobustBench's Linf 8/255 and L2 0.5). Other norms: the
#: middle of the grid.
SAVE_EPS: dict[Norm, float] = {Norm.LINF: 8 / 255, Norm.L2: 0.5}


def saved_eps_index(grid: Sequence[float], norm: Norm) -> int:
    """The grid point whose adversarial examples are saved: the largest eps not above the reference budget
    (the smallest eps if all are above it), as the policy picks it; the middle eps for other norms."""
    ref = SAVE_EPS.get(norm)
    if ref is None:
        return len(grid) // 2
    below = [i for i, e in enumerate(grid) if e <= ref * (1 + 1e-9)]
    return max(below) if below else 0


def _order(success: torch.Tensor, k: int) -> torch.Tensor:
    """The first ``k`` sample indices, successful attacks first (each group in index order)."""
    return torch.argsort((~success).to(torch.int8), stable=True)[:k]


def saved_at_eps(x: torch.Tensor, y: torch.Tensor, outs: Sequence[Outcome], grid: Sequence[float], j: int,
                 k: int) -> dict[str, np.ndarray] | None:
    """Up to ``k`` adversarial examples of a fixed-eps curve at ``grid[j]``, as the curve counts them: a
    sample fooled at a smaller eps keeps that adversarial (it lies in the larger ball too), the others the
    one found at ``grid[j]``. Successful attacks first."""
    if k <= 0 or not outs:
        return None
    n = y.shape[0]
    first = torch.full((n,), -1, dtype=torch.long)
    for t in range(j + 1):
        fooled = (outs[t].pred_adv != y) & (first < 0)
        first[fooled] = t
    pick = torch.where(first >= 0, first, torch.full_like(first, j))
    success = (first >= 0) & (outs[j].pred_clean == y)
    idx = _order(success, k)
    at = pick[idx]

    def take(attr: str) -> np.ndarray:
        return torch.stack([getattr(outs[int(t)], attr)[int(i)] for i, t in zip(idx, at, strict=True)]).numpy()

    conf = [outs[int(t)].conf_adv for t in at]
    return {
        "index": idx.numpy(), "x_clean": x.detach().cpu()[idx].float().numpy(), "x_adv": take("x_adv"),
        "y_true": y[idx].numpy(), "y_pred_clean": outs[j].pred_clean[idx].numpy(), "y_pred_adv": take("pred_adv"),
        "confidence_adv": np.array([float(c[int(i)]) if c is not None and c.numel() else np.nan
                                    for c, i in zip(conf, idx, strict=True)], dtype=np.float32),
        "distance": take("distance"), "fooled": success[idx].numpy(), "eps": np.asarray(grid[j], dtype=np.float64),
        "eps_found": np.array([grid[int(t)] for t in at], dtype=np.float64),
    }


def saved_minimal(x: torch.Tensor, out: Outcome, k: int) -> dict[str, np.ndarray] | None:
    """Up to ``k`` adversarial examples of a minimal-norm attack (C&W, DeepFool, ...), successful first; their
    ``distance`` is the perturbation found (no eps: such an attack runs once, unbounded)."""
    if k <= 0:
        return None
    idx = _order(out.success, k)
    conf = out.conf_adv
    return {
        "index": idx.numpy(), "x_clean": x.detach().cpu()[idx].float().numpy(), "x_adv": out.x_adv[idx].numpy(),
        "y_true": out.y[idx].numpy(), "y_pred_clean": out.pred_clean[idx].numpy(),
        "y_pred_adv": out.pred_adv[idx].numpy(),
        "confidence_adv": conf[idx].numpy() if conf is not None and conf.numel() else
        np.full(idx.shape[0], np.nan, dtype=np.float32),
        "distance": out.distance[idx].numpy(), "fooled": out.success[idx].numpy(),
        "eps": np.asarray(np.nan, dtype=np.float64),
    }


def adversarial_artefacts(key: str, saved: dict[str, np.ndarray], conf_clean: torch.Tensor | None,
                          target_labels: torch.Tensor | None, spec: TargetSpec,
                          table: TableUnits | None = None) -> list[Artefact]:
    """The ``.npz`` of one attack's saved adversarial examples and, for images, a PNG per sample.

    For a table (``table``: a CSV dataset), the rows are also given in the table's own units — in the
    ``.npz`` (``x_clean_domain``, ``x_adv_domain``) and as a CSV, one row per sample with each feature's clean
    value, adversarial value and change — since the model's inputs may be scaled and an analyst reads the
    change in the data's units (issue 18 #1)."""
    eps = float(saved["eps"])
    stem = f"{safe_name(key)}-{'minimal' if not np.isfinite(eps) else eps_name(eps)}"
    idx = np.asarray(saved["index"]).astype(np.int64)
    cc = conf_clean.numpy()[idx] if conf_clean is not None else np.full(idx.shape[0], np.nan, dtype=np.float32)
    arrays: dict[str, Any] = {**saved, "confidence_clean": cc, "attack_key": np.str_(key),
                              "value_range": np.asarray(spec.value_range, dtype=np.float64)}
    if target_labels is not None:
        arrays["target_label"] = target_labels.cpu().numpy()[idx]
    rows = None
    if table is not None and idx.shape[0]:
        clean_d, adv_d = table.to_domain(saved["x_clean"]), table.to_domain(saved["x_adv"])
        arrays.update(x_clean_domain=clean_d, x_adv_domain=adv_d,
                      feature_names=np.asarray(list(table.feature_names), dtype=np.str_))
        rows = _domain_rows(saved, idx, clean_d, adv_d, list(table.feature_names))
    where = "the unbounded minimal perturbation" if not np.isfinite(eps) else f"eps {eps:g} ({spec.name})"
    out = [Artefact(path=f"adversarial/{stem}.npz", data=npz_bytes(arrays), kind="adversarial-examples",
                    description=f"{key}: {idx.shape[0]} adversarial examples at {where}, with clean inputs, labels, "
                    "predictions and confidences")]
    if rows is not None:
        out.append(Artefact(path=f"adversarial/{stem}.csv", data=csv_bytes(rows), kind="adversarial-rows",
                            description=f"{key}: the same {idx.shape[0]} rows in the table's own units (clean, "
                            "adversarial and change per feature)"))
    if is_image(saved["x_clean"].shape[1:]):
        for i, sid in enumerate(idx):
            clean, adv = saved["x_clean"][i], saved["x_adv"][i]
            row = side_by_side([to_rgb(clean, spec.value_range), to_rgb(adv, spec.value_range),
                                to_rgb(amplified_difference(clean, adv))])
            out.append(Artefact(
                path=f"adversarial/{stem}/sample-{int(sid)}.png", data=png_bytes(row), kind="adversarial-image",
                description=f"sample {int(sid)}: clean (label {int(saved['y_true'][i])}, predicted "
                f"{int(saved['y_pred_clean'][i])}) | adversarial (predicted {int(saved['y_pred_adv'][i])}) | "
                "difference, amplified to the full range (grey = unchanged)"))
    return out


class TableUnits(Protocol):
    """A dataset whose model inputs map back to its own units (:class:`aisec.data.table.CsvTable`)."""

    @property
    def feature_names(self) -> Sequence[str]: ...

    def to_domain(self, x: torch.Tensor | np.ndarray) -> np.ndarray: ...


def _domain_rows(saved: dict[str, np.ndarray], idx: np.ndarray, clean: np.ndarray, adv: np.ndarray,
                 features: list[str]) -> dict[str, Any]:
    """Columns of the adversarial-rows CSV: ids, labels and predictions, then per feature clean/adv/change."""
    cols: dict[str, Any] = {"sample": idx, "label": saved["y_true"], "pred_clean": saved["y_pred_clean"],
                            "pred_adv": saved["y_pred_adv"], "fooled": saved["fooled"]}
    for j, name in enumerate(features):
        cols[f"{name}"] = clean[:, j]
        cols[f"{name}:adv"] = adv[:, j]
        cols[f"{name}:change"] = adv[:, j] - clean[:, j]
    return cols


def explanation_artefacts(method: str, ex: dict[str, np.ndarray], value_range: tuple[float, float]) -> list[Artefact]:
    """A PNG per explained image: the input | its attribution (summed over channels) over it in grey, red
    for the explained class and blue against it."""
    out = []
    for i, sid in enumerate(np.asarray(ex["index"]).astype(np.int64)):
        rgb = to_rgb(ex["x"][i], value_range)
        heat = np.asarray(ex["attribution"][i]).sum(0)
        out.append(Artefact(
            path=f"explanations/{safe_name(method)}-{int(sid)}.png",
            data=png_bytes(side_by_side([rgb, heat_overlay(rgb, heat)])), kind="explanation-image",
            description=f"sample {int(sid)}: input (label {int(ex['label'][i])}, predicted {int(ex['pred'][i])}) | "
            f"{method} attribution for class {int(ex['explained'][i])} (red: for, blue: against)"))
    return out


def poisoned_artefact(x: torch.Tensor, y: torch.Tensor, y_clean: torch.Tensor, poisoned: torch.Tensor,
                      train_index: torch.Tensor, *, attack: str, rate: float, trigger: dict[str, Any],
                      source_class: int | None, target_class: int) -> Artefact:
    """``poisoned-train.npz``: the training set with its poisons in place (``x``, ``y`` as trained on), the
    original labels, the poisoned mask, the rows' ids in the data and the trigger as JSON."""
    k = int(poisoned.sum())
    arrays = {
        "x": x.detach().cpu().float().numpy(), "y": y.cpu().numpy().astype(np.int64),
        "y_clean": y_clean.cpu().numpy().astype(np.int64), "poisoned": poisoned.cpu().numpy().astype(bool),
        "train_index": train_index.cpu().numpy().astype(np.int64), "attack": np.str_(attack),
        "rate": np.float64(rate), "trigger": np.str_(json.dumps(trigger, sort_keys=True)),
        "source_class": np.int64(-1 if source_class is None else source_class), "target_class": np.int64(target_class),
    }
    return Artefact(path="poisoned-train.npz", data=npz_bytes(arrays), kind="poisoned-data",
                    description=f"{attack}: the training set with {k} of {x.shape[0]} samples poisoned (rate "
                    f"{rate:g}), labels as trained on, the poisoned mask and the trigger")


def surrogate_artefact(net: torch.nn.Module, arch: str, arch_kwargs: dict[str, int], *, of: str) -> Artefact:
    """``surrogate.safetensors``: the surrogate's weights, its architecture (a zoo name) and that name's
    arguments in the header's metadata, which ``aisec assess -m`` reads — no code is stored or unpickled."""
    from safetensors.torch import save

    sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"aisec.arch": arch, "aisec.arch_kwargs": json.dumps(arch_kwargs, sort_keys=True),
            "aisec.surrogate_of": of}
    return Artefact(path="surrogate.safetensors", data=save(sd, metadata=meta), kind="surrogate-model",
                    description=f"the surrogate ('proxy') model of {of}: safetensors weights of aisec's '{arch}' "
                    f"architecture {arch_kwargs}; assess it with aisec assess -m")


__all__ = ["SAVE_EPS", "adversarial_artefacts", "explanation_artefacts", "poisoned_artefact", "saved_at_eps",
           "saved_eps_index", "saved_minimal", "surrogate_artefact"]
