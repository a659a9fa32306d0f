"""Input detectors that reject adversarial inputs: the base class, the guarded target and the name parser.

A detector ``D`` sits in front of a classifier ``g`` and answers, for each input, a score (higher = more
likely adversarial); inputs scoring above its **threshold** are *rejected*. The threshold is set on clean
data at a chosen false-positive rate (the share of clean inputs wrongly rejected, ``fpr``), as Xu, Evans &
Qi (NDSS 2018, https://arxiv.org/abs/1704.01155) do. :class:`GuardedTarget` is the deployed system
``g`` + ``D`` as a :class:`~aisec.core.target.Target` with a third outcome besides right and wrong: a
rejection (:meth:`GuardedTarget.rejects`).

How rejections count (the ``detection`` check, docs/defences.md):

- on a **clean** input a rejection is an error: the system's clean accuracy is "accepted and correct";
- on an **adversarial** input a rejection is a defence: a sample is robust when its clean input is
  accepted and correct and its adversarial input is either rejected or still classified correctly.

Each detector also gives a differentiable :meth:`InputDetector.attack_score` — what an *adaptive*
attacker who knows the detector descends (:mod:`aisec.defences.detect.adaptive`).

A detector is named ``name`` or ``name:key=value,...`` (``feature-squeezing:bits=3``); the names are the
registry family ``rejector``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import RejectorInfo, get, names
from aisec.core.target import Target, WrappedTarget


class DetectorParams(BaseModel):
    """Base of every detector's parameters (typo → error, NaN refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    fpr: float = Field(default=0.05, gt=0, lt=1, description="Share of clean inputs the threshold may reject.")


class InputDetector:
    """A detector of adversarial inputs in front of ``target``'s classifier.

    Subclasses set ``Params`` and ``name`` and write :meth:`attack_score` (and :meth:`train` when they
    learn something from adversarial examples). :meth:`fit` trains, then puts the threshold at the
    ``1 - fpr`` quantile of the scores of held-out clean inputs.
    """

    Params: ClassVar[type[DetectorParams]] = DetectorParams
    name: ClassVar[str] = ""

    def __init__(self, params: DetectorParams | None = None, **kwargs: Any) -> None:
        self.params = params if params is not None else self.Params(**kwargs)
        self.threshold: float | None = None
        #: the spread (standard deviation) of the clean calibration scores: the adaptive attack's unit
        self.scale: float = 1.0
        self.target: Target | None = None

    @classmethod
    def info(cls) -> RejectorInfo:
        return get("rejector", cls.name)

    # -- what a subclass writes -------------------------------------------------------------------------
    def train(self, target: Target, x: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int, batch_size: int,
              progress: Progress) -> None:
        """Learn from ``(x, y)`` (clean samples; ``eps``: the Linf budget of the attack to detect) before
        calibration; nothing by default."""

    def attack_score(self, x: torch.Tensor) -> torch.Tensor:
        """The score per sample, differentiable in ``x`` (straight-through where the detector is not)."""
        raise NotImplementedError

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The transformed copies of ``x`` the detector compares the classifier's answer on (none by default),
        differentiable in ``x`` (straight-through): the adaptive attack pulls the classifier's label on each
        to its label on ``x``."""
        return []

    # -- shared -----------------------------------------------------------------------------------------
    def fit(self, target: Target, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, calibrate: float = 0.5,
            seed: int = 0, batch_size: int = 256, progress: Progress = no_progress) -> InputDetector:
        """Train on the first part of ``(x, y)`` and set the threshold on the clean scores of the rest
        (the last ``calibrate`` share; a detector that learns nothing is calibrated on all of ``x``).
        ``eps``: the Linf budget of the attack a trained detector learns to see."""
        self.target = target
        n = int(x.shape[0])
        trains = self.info().trained
        k = n - max(round(n * calibrate), 1) if trains else 0
        if trains and k < 4:
            raise ConfigError(f"detector '{self.name}' needs at least 8 clean samples to train and calibrate on, "
                              f"got {n}")
        if trains:
            self.train(target, x[:k], y[:k], eps=eps, seed=seed, batch_size=batch_size, progress=progress)
        cal = self.score(x[k:], batch_size=batch_size)
        q = torch.quantile(cal.double(), 1.0 - self.params.fpr).item()
        self.threshold = float(q)
        self.scale = max(float(cal.double().std().item()) if cal.numel() > 1 else 1.0, 1e-6)
        return self

    def score(self, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """The scores of ``x`` (no gradient), batch by batch, on the CPU."""
        with torch.no_grad():
            return torch.cat([self.attack_score(x[i : i + batch_size]).detach().cpu().float()
                              for i in range(0, int(x.shape[0]), batch_size)])

    def rejects(self, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Which inputs the detector rejects (score above the threshold)."""
        return self.score(x, batch_size=batch_size) > self.calibrated()

    def calibrated(self) -> float:
        if self.threshold is None:
            raise ConfigError(f"detector '{self.name}' is not fitted: call fit(target, x, y) first")
        return self.threshold

    def classifier(self) -> Target:
        if self.target is None:
            raise ConfigError(f"detector '{self.name}' is not fitted: call fit(target, x, y) first")
        return self.target

    def label(self) -> str:
        """``name:key=value,...`` with every parameter."""
        values = self.params.model_dump(mode="json")
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in values.items())

    def record(self) -> dict[str, Any]:
        """What the evidence keeps of the detector: name, parameters and the fitted threshold."""
        return {"name": self.name, "spec": self.label(), "params": self.params.model_dump(mode="json"),
                "threshold": self.threshold}


def detector_names() -> list[str]:
    """The registered detectors (what ``--detector`` takes)."""
    return names("rejector")


def parse_detector(spec: str) -> InputDetector:
    """The detector ``spec`` names: ``name`` or ``name:key=value,...`` (``feature-squeezing:fpr=0.01``).

    Raises:
        ConfigError: one line — unknown name (listing the known ones), a malformed or unknown parameter.
    """
    known = ", ".join(detector_names())
    name, _, rest = spec.strip().partition(":")
    try:
        info = get("rejector", name.strip())
    except ConfigError:
        raise ConfigError(f"unknown detector '{name.strip()}'; known: {known}") from None
    cls = info.obj
    values: dict[str, str] = {}
    for part in (p.strip() for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"detector '{info.name}': parameters are key=value pairs, got '{part}'")
        v = value.strip()
        values[key.strip().replace("-", "_")] = None if v.lower() in ("none", "off") else v  # type: ignore[assignment]
    try:
        params = cls.Params(**values)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        field = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"detector '{info.name}': {field}: {msg} (its parameters: "
                          f"{', '.join(cls.Params.model_fields)})") from None
    built: InputDetector = cls(params)
    return built


class GuardedTarget(WrappedTarget):
    """``target`` behind the fitted ``detector``: the classifier's answers plus a rejection per input.

    ``predict`` and ``logits`` are the classifier's (the detector does not change a label, it refuses
    to give one); :meth:`rejects` is the third outcome. The spec is ``target``'s, renamed
    ``<name>+detector(<detector spec>)``.
    """

    def __init__(self, target: Target, detector: InputDetector) -> None:
        detector.calibrated()
        super().__init__(target, f"{target.spec.name}+detector({detector.name})")
        self.detector = detector

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.target.predict(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.target.logits(x)

    def rejects(self, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Per input: True when the detector refuses it."""
        return self.detector.rejects(x, batch_size=batch_size)


__all__ = ["DetectorParams", "GuardedTarget", "InputDetector", "detector_names", "parse_detector"]
