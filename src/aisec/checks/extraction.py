"""Extraction check: can the model be approximated from outside, and do attacks on the copy transfer?

Splits the data into an attacker pool (first ``pool_fraction``) and a held-out part. A surrogate is
trained from ``query_budget`` target queries on the pool (:func:`aisec.attacks.extraction.extract`), its
fidelity (arg-max agreement with the target) is measured on the held-out part, and PGD on the
surrogate is replayed on the target. Metrics: ``extraction.fidelity`` and
``extraction.transfer_success_rate`` (Wilson 95% intervals), ``extraction.queries``.
Works on any target with probabilities — black box included; threat: ATLAS AML.T0024.002
(extract ML model) and AML.T0043.002 (black-box transfer).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.extraction.surrogate import default_architecture_spec, extract, fidelity, surrogate_transfer
from aisec.checks._artefacts import surrogate_artefact
from aisec.core.artefacts import ARTEFACTS, Artefact
from aisec.core.check import Result, Summary
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import register_check
from aisec.core.target import Target
from aisec.core.types import Capability, Norm

ATLAS_EXTRACTION = ("AML.T0024.002", "AML.T0043.002")


class ExtractionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    query_budget: int = Field(default=1000, ge=1, description="Target queries for training the surrogate.")
    pool_fraction: float = Field(default=0.5, gt=0, lt=1, description="Share of the data given to the attacker.")
    samples: int | None = Field(default=None, ge=2, description="Use the first N samples (default: all).")
    epochs: int = Field(default=30, ge=1)
    soft_labels: bool = True
    norm: Norm = Norm.LINF
    eps: float = Field(default=0.1, gt=0)
    steps: int = Field(default=20, ge=1)
    save_surrogate: bool = Field(default=True, description="Write the surrogate to artefacts/surrogate.safetensors "
                                 "(weights and architecture; `aisec assess -m` loads it).")
    seed: int = 0


class ExtractionSummary(Summary):
    """Surrogate fidelity, transfer success on the target and on the surrogate itself, queries spent."""

    fidelity: float
    transfer_success_rate: float
    surrogate_white_box_success_rate: float
    queries: int
    """Target queries the surrogate's training spent (the attacker's cost; never above ``query_budget``)."""
    evaluation_queries: int = 0
    """Queries aisec spent measuring fidelity and transfer on the held-out part (not part of the attack)."""
    surrogate_file: str | None = None
    """The saved surrogate's path in the run folder (``artefacts/surrogate.safetensors``), None if not saved."""
    surrogate_arch: str | None = None


@register_check("extraction")
class ExtractionCheck:
    """Model extraction: surrogate fidelity from a query budget and transfer-attack success.

    Needs only the target's predictions: a label-only target's surrogate is trained on its hard
    labels (``soft_labels`` is then ignored and recorded as false)."""

    Params = ExtractionParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--extract-queries", "Extraction: target queries for training the surrogate (default 1000).",
             kind="int"),
        Flag("--extract-epochs", "Extraction: training epochs of the surrogate (default 30).", kind="int"),
    )

    @staticmethod
    def from_flags(p: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The surrogate's query budget and training epochs."""
        for flag, key in (("extract_queries", "query_budget"), ("extract_epochs", "epochs")):
            if f.get(flag) is not None:
                p[key] = f[flag]
        return p

    def run(self, target: Target, data: Dataset, params: Any, *, progress: Progress = no_progress) -> Result:
        p = params if isinstance(params, ExtractionParams) else ExtractionParams(**(params or {}))
        t0 = time.perf_counter()
        x, y = take(data, p.samples)
        x, y = x.float(), y.long()
        k = int(len(x) * p.pool_fraction)
        if k < 1 or len(x) - k < 1:
            raise ConfigError(f"{len(x)} samples cannot be split into an attacker pool and a held-out part")
        pool, xe, ye = x[:k], x[k:], y[k:]
        q0 = target.queries
        progress("extraction: train surrogate", 0, 3)
        soft = p.soft_labels and Capability.LABELS_ONLY not in target.spec.capabilities
        ex = extract(target, pool, query_budget=p.query_budget, epochs=p.epochs, soft=soft, seed=p.seed)
        used = target.queries - q0  # the attacker's cost: fidelity and transfer below are aisec's measurement
        progress("extraction: fidelity", 1, 3)
        fid = fidelity(ex.surrogate, target, xe)
        progress("extraction: transfer", 2, 3)
        tr = surrogate_transfer(ex.surrogate, target, xe, ye, params={"eps": p.eps, "norm": p.norm, "steps": p.steps},
                             seed=p.seed)
        progress("extraction", 3, 3)
        evaluated = target.queries - q0 - used
        pp = {"query_budget": p.query_budget, "train_samples": ex.train_samples, "soft_labels": soft}
        tp = {**pp, "attack": "pgd", "norm": p.norm.value, "eps": p.eps, "steps": p.steps}
        ms = [
            Measurement(metric="extraction.fidelity", value=fid.agreement, unit="fraction", higher_is_better=False,
                        interval=fid.interval, sample_count=fid.n, parameters=pp, raw_key="samples"),
            Measurement(metric="extraction.transfer_success_rate", value=tr.success_rate, unit="fraction",
                        higher_is_better=False, interval=tr.interval, sample_count=tr.eligible, parameters=tp,
                        raw_key="samples"),
            Measurement(metric="extraction.queries", value=float(used), unit="queries", higher_is_better=True,
                        sample_count=fid.n, parameters={**pp, "evaluation_queries": evaluated}),
        ]
        table = {"agree": fid.agree.numpy(), "transfer_fooled": tr.outcome_on_target.numpy(),
                 "y": ye.cpu().numpy().astype(np.int64)}
        artefacts: list[Artefact] = []
        arch: str | None = None
        if p.save_surrogate:
            arch, kwargs = default_architecture_spec(target.spec.input_shape, target.spec.num_classes)
            artefacts.append(surrogate_artefact(ex.surrogate.module, arch, kwargs, of=target.spec.name))
        summary = ExtractionSummary(fidelity=fid.agreement, transfer_success_rate=tr.success_rate,
                                    surrogate_white_box_success_rate=tr.surrogate_success_rate, queries=used,
                                    evaluation_queries=evaluated,
                                    surrogate_file=f"{ARTEFACTS}/{artefacts[0].path}" if artefacts else None,
                                    surrogate_arch=arch)
        warnings = []
        if tr.eligible == 0:
            warnings.append("the target classifies no held-out sample correctly; transfer success is undefined")
        return Result(check="extraction", measurements=ms, params=p.model_dump(mode="json"), summary=summary,
                      tables={"samples": table}, artefacts=artefacts, warnings=warnings,
                      seconds=time.perf_counter() - t0,
                      threats=ATLAS_EXTRACTION)
