"""Backdoor check: does a given model already carry a backdoor? Detection, not attack.

Runs one or more detectors of :mod:`aisec.detect` on (a sample of) the data given with the model —
ideally its training data, which a poisoner would have touched:

- ``neural-cleanse`` (Wang et al. 2019) reverse-engineers, per class, the smallest trigger that
  sends clean images there; a backdoor target needs a far smaller one. Needs images, any clean data.
- ``activation-clustering`` (Chen et al. 2018) and ``spectral-signatures`` (Tran et al. 2018)
  look for a separate cluster / a dominant direction in the penultimate activations of each class
  and flag the samples that form it. They need the training data with its (suspected) poisons.

Per method it reports:

- ``backdoor.anomaly_index`` per class: the robust z-score of the method's class statistic
  (larger = more suspicious); a class is suspected above the method's ``threshold``;
- ``backdoor.suspected_classes``: how many classes are suspected (their ids in the parameters);
- ``backdoor.alarm``: 1 if any class is suspected, else 0;
- data methods only: ``backdoor.flagged_samples`` (count) and ``poisoning.poisoned_fraction``
  (flagged / inspected, 95% Wilson interval; feeds Clouditor's ``poisonedDataLevel``), with the
  per-sample flags in the raw table ``samples`` (``index`` is the position in the dataset).

The target is never modified: every detector works on a copy of its module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.core.check import ConsoleLine, Result, Summary, require_same_classes
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get, methods, register_check
from aisec.core.stats import wilson
from aisec.core.target import Target, check_inputs
from aisec.core.types import Modality
from aisec.detect import Detection, detect_backdoor

ATLAS_BACKDOOR = ("AML.T0018.000", "AML.T0020", "AML.T0043.004")


class BackdoorParams(BaseModel):
    """Options of the backdoor check."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    methods: list[str] = Field(
        default_factory=lambda: ["neural-cleanse", "activation-clustering"],
        description="Detectors to run (neural-cleanse needs images; the others need the training data). "
        "Default Neural Cleanse + activation clustering, which complement each other in "
        "bench/bench_backdoor_detection.py: on MNIST/LeNet5 AC found 2/3 backdoors and NC 1/3 (0 false alarms "
        "each); on 8x8 digits NC found 3/5 (0 false alarms) and AC 0/5 (1/5 false alarms). Only AC flags samples.",
    )
    samples: int | None = Field(default=500, ge=10, description="Inspect at most this many samples (None: all).")
    steps: int = Field(default=300, ge=10, description="Neural Cleanse optimisation steps.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Anomaly-index threshold per method (default 3 for each)."
    )
    expected_rate: float = Field(
        default=0.1, gt=0, lt=1,
        description="Spectral signatures: expected share of poisons WITHIN the backdoored class (Tran et al.; "
        "1.5x this share of a suspected class is flagged).",
    )
    examples: int = Field(default=8, ge=0, description="Flagged samples kept as images for the report.")
    seed: int = 0

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one detection method")
        return list(dict.fromkeys(_known(m) for m in v))

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        return {_known(k): t for k, t in v.items()}


def _known(method: str) -> str:
    """The registry name of a detector; a ValueError naming the known detectors otherwise."""
    try:
        return get("detector", method).name
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class DetectionSummary(Summary):
    """One detector's verdict: its class statistic and anomaly index per class, the suspected classes and
    (data methods) the flagged samples, at most 100 of them (all are in the raw table).

    The detector's own details follow as extra keys, as :meth:`Detection.to_dict` writes them: every
    method names its ``statistic``; activation clustering adds ``smaller_cluster_fraction``, Neural
    Cleanse ``trigger_found``, spectral signatures ``outlier_scores_max``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    method: str
    suspected: list[int]
    alarm: bool
    class_scores: list[float]
    anomaly_index: list[float]
    threshold: float
    flagged: list[int]
    flagged_count: int
    samples: int


class BackdoorSummary(Summary):
    """Whether any detector raised the alarm, the classes suspected by any, and each detector's verdict."""

    alarm: bool
    suspected: list[int]
    samples: int
    classes: list[str]
    methods: list[DetectionSummary]

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """A line per detector: verdict, largest anomaly index against the threshold, samples flagged."""
        lines: list[ConsoleLine] = []
        for d in self.methods:
            verdict = f"suspects class(es) {d.suspected}" if d.alarm else "no alarm"
            flagged = "" if d.method == "neural-cleanse" else f", {d.flagged_count} samples flagged"
            lines.append(f"backdoor {d.method}: {verdict} (max anomaly index {max(d.anomaly_index):.2f}, "
                         f"threshold {d.threshold:g}{flagged})")
        return lines


@register_check("backdoor")
class BackdoorCheck:
    """Backdoor detection in a given model: suspected target classes and flagged samples."""

    Params = BackdoorParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--detect-methods", "Backdoor: detectors, e.g. neural-cleanse,activation-clustering.", kind="list"),
    )

    @staticmethod
    def from_flags(b: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The check's plan entry ``b`` with the given flags (None = not given) applied."""
        if f["detect_methods"]:
            b = {**b, "methods": f["detect_methods"]}
        return b

    def run(self, target: Target, data: Dataset, params: BackdoorParams, *,
            progress: Progress = no_progress) -> Result:
        t0 = time.perf_counter()
        p = params
        spec = target.spec
        require_same_classes(target, data)
        for method in p.methods:
            info = get("detector", method)
            if info.modalities == {Modality.IMAGE} and len(spec.input_shape) != 3:
                others = [m.name for m in methods("detector") if Modality.IMAGE not in m.modalities or
                          len(m.modalities) > 1]
                raise ConfigError(
                    f"{info.name} {info.summary}; model '{spec.name}' takes inputs of shape {spec.input_shape}, "
                    f"not (C, H, W). Use methods {' or '.join(others)}"
                )
        x, y = take(data, p.samples, device=spec.device)
        check_inputs(spec, x, what=f"dataset '{data.info.name}'")
        n = int(x.shape[0])
        classes = [str(c) for c in data.info.classes] or [str(k) for k in range(spec.num_classes)]
        measurements: list[Measurement] = []
        dets: list[Detection] = []
        warnings: list[str] = []
        table: dict[str, np.ndarray] = {"index": np.arange(n), "label": y.cpu().numpy()}
        for i, method in enumerate(p.methods):
            progress("backdoor detection", i, len(p.methods))
            det = detect_backdoor(target, data, method=method, samples=p.samples, threshold=p.thresholds.get(method),
                                  expected_rate=p.expected_rate, steps=p.steps, seed=p.seed)
            dets.append(det)
            base = {"method": method, "threshold": det.threshold}
            with_suspects = {**base, "suspected": [int(k) for k in det.suspected]}
            for k in range(spec.num_classes):
                measurements.append(Measurement(
                    metric="backdoor.anomaly_index", value=float(det.anomaly_index[k]), unit="robust z-score",
                    higher_is_better=False, sample_count=det.samples,
                    parameters={**base, "class": k, "class_name": classes[k] if k < len(classes) else str(k),
                                "statistic": float(det.class_scores[k])},
                ))
            measurements += [
                Measurement(metric="backdoor.suspected_classes", value=float(len(det.suspected)), unit="classes",
                            higher_is_better=False, sample_count=det.samples, parameters=with_suspects),
                Measurement(metric="backdoor.alarm", value=float(det.alarm), unit="bool", higher_is_better=False,
                            sample_count=det.samples, parameters=with_suspects),
            ]
            if get("detector", method).flags_samples:
                flags = np.zeros(n, dtype=bool)
                flags[det.flagged] = True
                table[f"flagged_{method.replace('-', '_')}"] = flags
                nf = int(flags.sum())
                measurements += [
                    Measurement(metric="backdoor.flagged_samples", value=float(nf), unit="samples",
                                higher_is_better=False, sample_count=n, parameters=base, raw_key="samples"),
                    Measurement(metric="poisoning.poisoned_fraction", value=nf / n, unit="fraction",
                                higher_is_better=False, interval=wilson(nf, n), sample_count=n,
                                parameters={**base, "detector": "backdoor"}, raw_key="samples"),
                ]
            if det.alarm:
                names = ", ".join(classes[k] if k < len(classes) else str(k) for k in det.suspected)
                warnings.append(f"{method} suspects a backdoor targeting class {names} "
                                f"(anomaly index {max(det.anomaly_index[k] for k in det.suspected):.2f} > "
                                f"{det.threshold:g})")
        progress("backdoor detection", len(p.methods), len(p.methods))
        images: dict[str, dict[str, np.ndarray]] = {}
        for d in dets:
            if d.triggers:
                images["triggers"] = {**d.triggers, "l1": np.asarray(d.class_scores)}
        flagged_any = np.zeros(n, dtype=bool)
        for key, col in table.items():
            if key.startswith("flagged_"):
                flagged_any |= col
        if p.examples and flagged_any.any() and x.ndim == 4:
            pick = np.nonzero(flagged_any)[0][: p.examples]
            images["flagged"] = {"x": x[pick].cpu().numpy(), "label": y[pick].cpu().numpy(), "index": pick}
        suspected = sorted({k for d in dets for k in d.suspected})
        summary = BackdoorSummary(alarm=bool(suspected), suspected=suspected, samples=n, classes=classes,
                                  methods=[_brief(d) for d in dets])
        return Result(check="backdoor", measurements=measurements, params=p.model_dump(mode="json"),
                      summary=summary, tables={"samples": table} if len(table) > 2 else {}, images=images,
                      warnings=warnings, seconds=time.perf_counter() - t0, threats=ATLAS_BACKDOOR)


def _brief(det: Detection) -> DetectionSummary:
    """The detection as a summary, with at most 100 flagged indices (all of them are in the raw table)."""
    d = det.to_dict()
    d["flagged"] = d["flagged"][:100]
    return DetectionSummary.model_validate(d)
