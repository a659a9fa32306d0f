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

Next to each attack's curve the check reports, per norm, the per-sample worst case over every attack
it ran (``robustness.worst_case_robust_accuracy``: a sample is robust at eps only if no attack fooled
it within eps), the number to quote. Every run ends with a reliability verdict
(:mod:`aisec.checks._reliability`; ``robustness.reliable`` 1/0 and the flags with ids in the summary
and the warnings): probes of the target before any attack (zero or missing gradients, randomness,
probabilities passed as logits), the curves' own signs (rising with eps, FGSM beating PGD, an
objective still improving, black box beating white box) and a near-chance clean accuracy. When a flag
fires the check runs its remedy (:data:`~aisec.checks._reliability.ESCALATION`: Square or a transfer
attack for masked gradients, EOT for randomness, a DLR loss for probabilities, 5x the steps for an
unconverged attack), skipping with a note any remedy this build does not have; a target that claims
gradients but has no gradient path gets black-box attacks instead of a traceback.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisec.attacks.adaptive import adaptive_target
from aisec.attacks.base import Outcome, run_attack
from aisec.attacks.evasion.autoattack import CLEAN
from aisec.checks._artefacts import TableUnits, adversarial_artefacts, saved_at_eps, saved_eps_index, saved_minimal
from aisec.checks._attack_spec import ALL, DEFAULT_EPS, AttackSpec, Eps, select_attacks
from aisec.checks._reliability import (
    ESCALATION,
    CurveRecord,
    ReliabilityFlag,
    ReliabilityParams,
    Remedy,
    curve_flags,
    load_wrapper,
    near_chance_flag,
    probe_gradients,
    probe_probabilities,
    probe_randomness,
    worst_case,
)
from aisec.checks._robustness_summary import (
    CertifiedPointSummary,
    CertifiedSummary,
    CleverSummary,
    CurveSummary,
    DefenceSummary,
    EscalationSummary,
    FlagSummary,
    PointSummary,
    ReliabilitySummary,
    RobustnessSummary,
    TextCurveSummary,
    TextRobustnessSummary,
    WorstCaseSummary,
    WorstPointSummary,
)
from aisec.core.artefacts import Artefact
from aisec.core.check import IntervalSummary, Result, require_same_classes
from aisec.core.checkpoint import load_step, save_step
from aisec.core.dataset import Dataset, take
from aisec.core.errors import AisecError, ConfigError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackInfo, AttackKind, get_attack, names, register_check
from aisec.core.stats import clopper_pearson, median_interval, wilson
from aisec.core.target import Target, check_inputs
from aisec.core.types import REFERENCE_EPS, Capability, Modality, Norm, OutputKind
from aisec.core.words import eps_words
from aisec.data.table import CsvTable

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


#: The norm a certifier certifies when its entry names none: randomized smoothing proves L2 balls, the
#: bound methods (ibp, crown) Linf boxes.
CERTIFY_NORM: dict[str, Norm] = {"smoothing": Norm.L2}


class CertifyMethod(BaseModel):
    """One certifier of the ``certify`` block: its registry name, the norm, and its own settings as extra keys
    (``{name: smoothing, sigma: [0.25, 0.5], n0: 100, n: 1000, alpha: 0.001}``); a list value runs once per
    element (one certificate per σ)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    name: str
    norm: Literal["l2", "linf"] | None = Field(default=None, description="Default: l2 for smoothing, else linf.")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from aisec.certify import get_certifier

        try:
            get_certifier(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v.strip().lower()

    def resolved_norm(self) -> Norm:
        return Norm(self.norm) if self.norm else CERTIFY_NORM.get(self.name, Norm.LINF)

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(label, params)`` per run: the cartesian product of the list-valued settings."""
        import itertools

        extra = dict(self.model_extra or {})
        listed = sorted(k for k, v in extra.items() if isinstance(v, list))
        out = []
        for combo in itertools.product(*(extra[k] for k in listed)):
            params = {**extra, **dict(zip(listed, combo, strict=True))}
            tag = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in zip(listed, combo, strict=True))
            out.append((self.name + (f"({tag})" if tag else ""), params))
        return out


class CertifyParams(BaseModel):
    """Certified robustness next to the attacks (off by default: it is costly). Each method is certified on the
    check's grid of its norm (smoothing: the L2 grid; ibp, crown: the Linf grid), on the first ``samples``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    methods: list[CertifyMethod] = Field(default_factory=list)
    samples: int = Field(default=100, ge=1, description="How many of the attacked samples are certified.")

    @field_validator("methods", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        if isinstance(v, list):
            return [{"name": m.strip()} if isinstance(m, str) else m for m in v]
        return v


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
    certify: CertifyParams = Field(default_factory=CertifyParams)
    examples: int = Field(default=8, ge=0, description="Example images kept for the report.")
    save_adversarial: int = Field(
        default=8, ge=0, description="Samples per attack whose adversarial examples are written to "
        "artefacts/adversarial/ (an .npz per attack at the reference eps, a PNG per sample for images; 0 = none).")
    seed: int = 0
    reliability: ReliabilityParams = Field(default_factory=ReliabilityParams)
    skip: list[str] = Field(default_factory=list, description="Attacks removed from the selection (e.g. of 'all').")
    target_label: int | None = Field(
        default=None, ge=0, description="Targeted run: every sample aims at this class (its own samples are left out)."
    )
    reference_eps: dict[str, float] = Field(
        default_factory=lambda: dict(REFERENCE_EPS),
        description="Per norm, the budget a verdict reads robustness at (the policy's reference_eps; default "
        "Linf 8/255, L2 0.5): each is added to its norm's grid, so the number quoted is measured, not the "
        "nearest grid point's. {} keeps the grids as given.",
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
        """The eps an attack runs at: its own grid, the norm's or the default, plus the reference budget."""
        return sorted(set(self.given_grid(spec, norm)) | set(self.reference_added(spec, norm)))

    def reference_added(self, spec: AttackSpec, norm: Norm) -> list[float]:
        """The norm's reference eps when the given grid lacks it (within 0.1 %, as the policy reads it)."""
        ref = self.reference_eps.get(norm.value)
        if ref is None or ref <= 0 or any(math.isclose(e, ref, rel_tol=1e-3) for e in self.given_grid(spec, norm)):
            return []
        return [float(ref)]

    def given_grid(self, spec: AttackSpec, norm: Norm) -> list[float]:
        """The eps grid the plan gives the attack (its own, the norm's, else the default), sorted."""
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


#: The attacks a run without ``attacks`` gets on a target without gradients: query attacks in the
#: default Linf grid's units; score-based Square (Andriushchenko et al. 2020) and decision-based
#: HopSkipJump (Chen et al. 2020) where scores are served, HopSkipJump alone on a label-only target.
BLACK_BOX_DEFAULTS: dict[Capability, tuple[str, ...]] = {
    Capability.PROBABILITIES: ("square", "hopskipjump"),
    Capability.LABELS_ONLY: ("hopskipjump",),
}


def default_attacks(params: RobustnessParams, caps: frozenset[Capability]) -> tuple[list[AttackSpec], list[str]]:
    """The attacks to select from, and a note when the default was adapted to the target.

    Attacks the plan or ``--attacks`` named are kept as given (and fail loudly if the target cannot take
    them). Left to the default, FGSM and PGD need gradients: a black-box target (an ONNX graph, an HTTP
    endpoint, a pickled scikit-learn model, a label-only service) gets the query attacks of
    :data:`BLACK_BOX_DEFAULTS` instead of an error about gradients.
    """
    if "attacks" in params.model_fields_set or Capability.GRADIENTS in caps:
        return list(params.attacks), []
    serves = Capability.PROBABILITIES if Capability.PROBABILITIES in caps else Capability.LABELS_ONLY
    chosen = BLACK_BOX_DEFAULTS[serves]
    what = "scores but no gradients" if serves is Capability.PROBABILITIES else "predicted labels only"
    note = (f"the target offers {what}: the default attacks are the query attacks {', '.join(chosen)} "
            "instead of fgsm, pgd (name others with --attacks)")
    return [AttackSpec(name=n) for n in chosen], [note]


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
        Flag("--certify", "Certifiers beside the attacks, e.g. smoothing,ibp (smoothing on the L2 grid, bounds on "
             "the Linf grid; costly, off by default).", kind="list"),
        Flag("--certify-samples", "Samples certified (default 100).", kind="int"),
        Flag("--bpda", "The deployed system's non-differentiable front end in front of the model, e.g. bit-depth:4: "
             "the attacks run through it with straight-through gradients (BPDA), scored on the system.", kind="text"),
        Flag("--eot", "Average this many stochastic forwards per gradient (EOT) in the attacks (a randomised model).",
             kind="int"),
        Flag("--save-adversarial", "Adversarial examples written per attack to artefacts/adversarial/ (default 8; "
             "0 = none).", kind="int"),
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
        bpda, eot = f.get("bpda"), f.get("eot")
        if f["norm"] or f["targeted"] or attack_params or bpda or eot is not None:
            specs = [a if isinstance(a, dict) else {"name": a} for a in r.get("attacks", ["fgsm", "pgd"])]
            # --steps goes to the attacks that declare they are iterative (they take ``steps``)
            iterative = set(names("evasion", iterative=True)) | set(names("text", iterative=True))
            for a in specs:
                if f["norm"]:
                    a["norm"] = f["norm"]
                if f["targeted"]:
                    a["targeted"] = True
                if bpda:
                    a["bpda"] = bpda
                if eot is not None:
                    a["eot"] = eot
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
        if f.get("save_adversarial") is not None:
            r["save_adversarial"] = f["save_adversarial"]
        certify = dict(r.get("certify", {}))
        if f.get("certify"):
            certify["methods"] = [{"name": m} for m in f["certify"]]
        if f.get("certify_samples") is not None:
            certify["samples"] = f["certify_samples"]
        if certify:
            r["certify"] = certify
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

            result = run_text_robustness(target, data, params, progress=progress)
            if params.certify.methods:
                result.warnings.append("certify skipped: the certifiers need continuous inputs; a text target's "
                                       "inputs are token ids")
            return result
        if params.target_label is not None and params.target_label >= spec.num_classes:
            raise ConfigError(f"target_label {params.target_label} is not a class of model '{spec.name}' "
                              f"({spec.num_classes} classes)")
        fixed = params.target_label
        specs, default_note = default_attacks(params, spec.capabilities)
        attacks, selection_notes = select_attacks(specs, family="evasion", capabilities=spec.capabilities,
                                                  skip=params.skip, targeted=fixed is not None)
        selection_notes = [*default_note, *selection_notes]
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
        # an attack's own BPDA / EOT wrappers, built now so a target they cannot wrap fails before any work
        wrapped = [adaptive_target(target, bpda=a.bpda, eot=a.eot) for a in attacks]
        x, y = take(data, params.samples, device=spec.device)
        check_inputs(spec, x, what=f"dataset '{data.info.name}'")
        n = int(x.shape[0])
        probs_clean = _probabilities(target, x, params.batch_size)
        pred_clean = probs_clean.argmax(1)
        conf_clean = probs_clean.gather(1, pred_clean[:, None]).squeeze(1).float()
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
            "confidence_clean": conf_clean.numpy(), "clean_correct": correct.numpy(),
        }
        warnings: list[str] = []
        rp = params.reliability
        flags: list[ReliabilityFlag] = []
        probes: dict[str, str] = {}
        if rp.enabled:
            flags, probes = _probe(target, x, y, rp)
            chance = near_chance_flag(k_clean, n, spec.num_classes)
            if chance is not None:
                flags.append(chance)
        no_path = any(f.id == "no_gradient_path" for f in flags)
        gen = torch.Generator().manual_seed(params.seed)
        warnings += selection_notes
        # A fixed target class: its own samples cannot be sent to it, so they are left out of every count.
        inc = torch.ones(n, dtype=torch.bool) if fixed is None else yc != fixed
        n_a, correct_a = int(inc.sum()), correct & inc
        if n_a == 0:
            raise ConfigError(f"target_label {fixed}: every one of the {n} samples is of that class; nothing to attack")
        if fixed is not None:
            warnings.append(f"targeted at class {fixed}: the {n - n_a} sample(s) labelled {fixed} are left out of "
                            f"every attack's robust accuracy and success rate ({n_a} of {n} counted)")
        # the attacks are scored over the counted samples only: ``correct``/``n`` of the state are theirs
        st = _State(x=x, y=y, yc=yc, correct=correct_a, pred_clean=pred_clean, n=n_a, measurements=measurements,
                    table=table, warnings=warnings, inc=inc, fixed=fixed, attacks=attacks, conf_clean=conf_clean,
                    units=data if isinstance(data, CsvTable) else None)
        for a, tgt in zip(attacks, wrapped, strict=True):
            info = get_attack(a.name)
            norm = a.resolved_norm()
            tl = None
            if fixed is not None:
                tl = torch.full_like(yc, fixed)
            elif a.targeted:
                offset = torch.randint(1, spec.num_classes, (n,), generator=gen)
                tl = (yc + offset) % spec.num_classes
            if no_path and Capability.GRADIENTS in info.requires:
                warnings.append(f"{info.name} ({norm.value}) skipped: the target has no gradient path "
                                "(see the no_gradient_path flag); black-box attacks run instead.")
                continue
            key = f"{info.name}-{norm.value}" + ("-targeted" if a.targeted else "") + a.key_suffix()
            # Under BPDA the attacked system is model(preprocessing(x)): its own clean predictions decide which
            # samples count and what success is (never the model without its front end, the approximation).
            system_clean = None if a.bpda is None else _probabilities(tgt, x, params.batch_size).argmax(1)
            try:
                self._attack(tgt, st, info, a, norm, key, tl, params, progress, system_clean=system_clean)
            except RuntimeError:
                if Capability.GRADIENTS not in info.requires:
                    raise
                probe = probe_gradients(target, x[: rp.probe_samples], y[: rp.probe_samples])
                if probe.status != "none":
                    raise
                flags.append(ReliabilityFlag("no_gradient_path", probe.detail + f" ({info.name} failed)."))
                probes["gradients"] = probe.detail
                no_path = True
                warnings.append(f"{info.name} ({norm.value}) failed: the target has no gradient path; black-box "
                                "attacks run instead.")
        escalations: list[EscalationSummary] = []
        if rp.enabled:
            flags += curve_flags(st.records, st.n)
            if rp.escalate:
                escalations = self._escalate(target, st, flags, params, progress)
                flags += curve_flags(st.records, st.n)
            flags = list({(f.id, f.curve, f.norm, f.eps): f for f in flags}.values())
            warnings += [f.message() for f in flags if f.id not in ("rising_with_eps", "fgsm_beats_pgd")]
        warnings += _masking_warnings(st.curves)
        worst = _worst_case(st, params)
        certified = self._certify(target, st, params, progress)
        clever_summary = None if no_path else self._clever(target, x, params, measurements, table, warnings,
                                                           progress)
        if no_path and params.clever.enabled:
            warnings.append("CLEVER skipped: it needs input gradients and the target has no gradient path")
        reliability = None
        if rp.enabled:
            reliable = not flags
            measurements.append(Measurement(
                metric="robustness.reliable", value=1.0 if reliable else 0.0, unit="bool", higher_is_better=True,
                interval=None, sample_count=n, raw_key=None,
                parameters={"flags": sorted({f.id for f in flags}), "attacks": [r.key for r in st.records]},
            ))
            reliability = ReliabilitySummary(
                reliable=reliable, probes=probes, escalations=escalations,
                flags=[FlagSummary(id=f.id, title=f.title, detail=f.detail, next_step=f.next_step, curve=f.curve,
                                   norm=f.norm, eps=list(f.eps)) for f in flags],
            )
        by_curve: dict[str, list[str]] = {}
        for f in flags:
            if f.curve is not None:
                by_curve.setdefault(f.curve, []).append(f.id)
        curves = [c.model_copy(update={"flags": sorted(set(by_curve.get(c.key, [])))}) for c in st.curves]
        summary = RobustnessSummary(
            samples=n, clean_accuracy=k_clean / n, clean_ci=IntervalSummary.from_interval(wilson(k_clean, n)),
            curves=curves, clever=clever_summary, classes=list(data.info.classes), worst_case=worst,
            reliability=reliability, grid_notes=_reference_notes(st), certified=certified,
            defence=defence_summary(target, x, yc, k_clean / n, curves, worst, reliability, params, t0),
        )
        return Result(
            check="robustness", measurements=measurements, params=params.model_dump(mode="json"),
            summary=summary, tables={"samples": table}, images=st.images, artefacts=st.artefacts, warnings=warnings,
            seconds=time.perf_counter() - t0, threats=ATLAS_EVASION,
        )

    def _attack(
        self, target: Target, st: _State, info: AttackInfo, a: AttackSpec, norm: Norm, key: str,
        tl: torch.Tensor | None, params: RobustnessParams, progress: Progress, escalation: str | None = None,
        system_clean: torch.Tensor | None = None,
    ) -> None:
        """Run (or restore from its checkpoint step) one attack's curve and score it into ``st``.

        ``system_clean``: the clean predictions of the system ``target`` stands for when it is not the model
        as given (BPDA: the model behind its preprocessing); the curve is then scored on the samples that
        system gets right, and kept out of the worst case and the curve flags, which are over the model as given.
        """
        pred_clean = st.pred_clean if system_clean is None else system_clean
        if escalation is not None and a.eps is not None:
            grid = params.given_grid(a, norm)  # a remedy re-runs a flagged curve's own eps only
        else:
            grid = params.grid(a, norm)
            for eps in params.reference_added(a, norm):
                st.reference_added.setdefault((norm.value, eps), []).append(key)
        step = f"{len(st.curves):02d}-{key}"  # a run killed after this attack resumes after it
        kept = load_step(step)
        if kept is not None:
            curve = _curve_from_step(*kept)
        else:
            curve = self._curve(target, st.x, st.y, tl, info.name, info.kind, norm, grid, a, params, progress,
                                pred_clean, st.conf_clean)
            save_step(step, *_curve_to_step(curve))
        correct = st.correct if system_clean is None else (system_clean == st.yc) & st.inc
        n, k_clean = st.n, int(correct.sum())
        wrapper = a.wrapper_label()
        points: list[PointSummary] = []
        robust_counts: list[int] = []
        for point, fooled, dist in zip(curve["points"], curve["fooled"], curve["distances"], strict=True):
            eps = point["eps"]
            fooled = fooled & st.inc
            pp = {"attack": info.name, "norm": norm.value, "eps": eps, "targeted": a.targeted,
                  "quantize": params.quantize, **a.params,
                  **({"target_label": st.fixed} if st.fixed is not None and tl is not None else {})}
            if escalation is not None:
                pp["escalation"] = escalation
            if wrapper is not None:
                pp.update({"wrapper": wrapper, **({"bpda": a.bpda} if a.bpda else {}),
                           **({"eot": a.eot} if a.eot else {})})
            if system_clean is not None:
                pp["clean_accuracy_of_system"] = k_clean / n
            robust = correct & ~fooled
            k_rob = int(robust.sum())
            robust_counts.append(k_rob)
            k_fool = int((fooled & correct).sum())
            delta = k_clean - k_rob
            d_succ = dist[(fooled & correct).numpy()]
            med = float(np.median(d_succ)) if d_succ.size else float("nan")
            tags = curve.get("tags", [None] * len(grid))[grid.index(eps)]
            stage_robust, broken = None, None
            if tags is not None:
                broken = _broken_by(tags, fooled & correct, correct)
                stage_robust = _stage_robust(broken, correct, curve.get("tag_order", []))
                pp["stage_robust"] = stage_robust
            points.append(PointSummary(
                eps=eps, raw_robust_accuracy=point["raw_robust_accuracy"], robust_accuracy=k_rob / n,
                ci=IntervalSummary.from_interval(wilson(k_rob, n)), success_rate=k_fool / max(k_clean, 1),
                safair_delta=delta / n, median_distance=med, stage_robust=stage_robust,
            ))
            st.measurements += [
                Measurement(metric="robustness.robust_accuracy", value=k_rob / n, unit="fraction",
                            higher_is_better=True, interval=wilson(k_rob, n), sample_count=n,
                            parameters=pp, raw_key="samples"),
                Measurement(metric="robustness.attack_success_rate", value=k_fool / max(k_clean, 1),
                            unit="fraction", higher_is_better=False, interval=wilson(k_fool, k_clean),
                            sample_count=k_clean, parameters=pp, raw_key="samples"),
                Measurement(metric="robustness.safair_delta", value=delta / n, unit="fraction",
                            higher_is_better=False, interval=wilson(delta, n), sample_count=n,
                            parameters=pp, raw_key="samples"),
            ]
            if d_succ.size:  # no successful attack: there is no perturbation to take the median of
                st.measurements.append(Measurement(
                    metric="robustness.median_perturbation", value=med, unit=norm.value, higher_is_better=True,
                    interval=median_interval(d_succ), sample_count=int(d_succ.size), parameters=pp,
                    raw_key="samples",
                ))
            # per sample as in the aggregates: "fooled" is an attack success, which only a clean-correct
            # sample can be; a clean-misclassified one is neither fooled nor given a distance
            success = (fooled & correct).numpy()
            st.table[f"{key}@{eps:g}:pred"] = curve["preds"][grid.index(eps)].numpy()
            confs = curve.get("confs")  # absent from a step kept before confidences were
            st.table[f"{key}@{eps:g}:confidence"] = confs[grid.index(eps)].numpy() if confs else \
                np.full(st.yc.shape[0], np.nan)
            st.table[f"{key}@{eps:g}:fooled"] = success
            st.table[f"{key}@{eps:g}:distance"] = np.where(success, dist, np.nan)
            if broken is not None:
                st.table[f"{key}@{eps:g}:broken_by"] = broken
        if system_clean is not None:
            st.table[f"{key}:pred_clean"] = system_clean.numpy()
            st.warnings.append(
                f"{info.name} ({norm.value}, {wrapper}) is scored on the model behind {a.bpda}: clean accuracy "
                f"{k_clean / n:.3f} there (vs {int(st.correct.sum()) / n:.3f} for the model as given); it is left out "
                "of the worst case over attacks and the curve flags, which are over the model as given")
        st.warnings += curve["warnings"]
        if params.examples and "example" in curve:
            st.images[key] = curve["example"]
        if params.save_adversarial and curve.get("saved"):
            st.artefacts += adversarial_artefacts(key, curve["saved"], st.conf_clean, tl, target.spec, st.units)
        traces = [list(t) for t in curve.get("loss_traces", [[] for _ in grid])]
        st.curves.append(CurveSummary(
            attack=curve["attack"], norm=curve["norm"], kind=curve["kind"], targeted=curve["targeted"],
            params=curve["params"], points=points, warnings=curve["warnings"], seconds=curve["seconds"],
            queries=curve["queries"], example_eps=curve["example_eps"], key=key, loss_traces=traces,
            escalation=escalation, wrapper=wrapper,
            clean_accuracy=k_clean / n if system_clean is not None else None,
        ))
        if a.eot is not None:  # the randomness flag's remedy (PGD through EOT) is this run
            st.ran.add(_identity(info.name, norm.value, "EOTTarget", a.params))
        if system_clean is not None:
            return
        st.records.append(CurveRecord(
            key=key, attack=info.name, norm=norm.value, targeted=a.targeted,
            blackbox=Capability.GRADIENTS not in info.requires, iterative=info.iterative, eps=list(grid),
            robust=robust_counts, raw=[p["raw_robust_accuracy"] for p in curve["points"]], traces=traces,
            fooled=[f.numpy() for f in curve["fooled"]], escalated_from=escalation, params=dict(a.params),
        ))
        st.ran.add(_identity(info.name, norm.value, None, a.params))

    def _escalate(
        self, target: Target, st: _State, flags: Sequence[ReliabilityFlag], params: RobustnessParams,
        progress: Progress,
    ) -> list[EscalationSummary]:
        """Run the remedy (:data:`ESCALATION`) of every flag raised, once each; say what ran and what was skipped."""
        rp = params.reliability
        out: list[EscalationSummary] = []
        asked = sorted({a.resolved_norm() for a in st.attacks}, key=lambda m: m.value)
        for flag in list(flags):
            record = next((r for r in st.records if r.key == flag.curve), None)
            if record is not None and record.escalated_from is not None and flag.id == "not_converged":
                continue  # a rerun is not rerun again: its flag stays, as the verdict
            for rem in ESCALATION.get(flag.id, ()):
                if rem.curve_only and record is None:
                    continue
                norms = [Norm(flag.norm)] if flag.norm else asked
                for norm in norms:
                    out.append(self._remedy(target, st, flag, rem, record, norm, params, progress, rp))
        return out

    def _remedy(
        self, target: Target, st: _State, flag: ReliabilityFlag, rem: Remedy, record: CurveRecord | None,
        norm: Norm, params: RobustnessParams, progress: Progress, rp: ReliabilityParams,
    ) -> EscalationSummary:
        name = rem.attack or (record.attack if record is not None else "")
        label = rem.label().replace("steps×0", f"steps×{rp.steps_factor}")

        def result(status: Literal["ran", "skipped"], note: str, key: str | None = None) -> EscalationSummary:
            return EscalationSummary(flag=flag.id, remedy=label, attack=name, norm=norm.value, status=status,
                                     note=note, key=key)

        try:
            info = get_attack(name)
        except ConfigError:
            return result("skipped", f"attack '{name}' is not registered in this build")
        attack_params: dict[str, Any] = dict(rem.params)
        if rem.steps_factor is not None:
            base = dict(record.params) if record is not None else {}
            fields = info.cls.Params.model_fields
            if "steps" not in fields:
                return result("skipped", f"'{name}' has no steps parameter")
            steps = int(base.get("steps", fields["steps"].default))
            attack_params = {**base, **attack_params, "steps": steps * (rem.steps_factor or rp.steps_factor)}
        identity = _identity(name, norm.value, rem.wrap, attack_params)
        if identity in st.ran:
            return result("skipped", "already ran")
        st.ran.add(identity)
        if "max_queries" in info.cls.Params.model_fields and "max_queries" not in attack_params:
            attack_params["max_queries"] = rp.square_queries
        if norm not in info.norms:
            return result("skipped", f"'{name}' does not support the {norm.value} norm")
        try:
            info.cls.Params(norm=norm, **attack_params)
        except (ValidationError, TypeError) as exc:
            return result("skipped", f"'{name}' does not take {attack_params} in this build "
                                     f"({str(exc).splitlines()[0]})")
        tgt = target
        if rem.wrap is not None:
            try:
                wrapper = load_wrapper(rem.wrap)
            except KeyError:
                return result("skipped", f"the wrapper {rem.wrap} is not available in this build")
            args = {k: (rp.eot_draws if v == 0 and k == "draws" else v) for k, v in rem.wrap_args.items()}
            try:
                tgt = wrapper(target, **args)
            except ConfigError as exc:  # e.g. BPDA on a target that declares no preprocessing
                return result("skipped", str(exc).splitlines()[0])
        if not info.requires <= tgt.spec.capabilities:
            return result("skipped", f"'{name}' needs {', '.join(sorted(c.value for c in info.requires))}, which "
                                     "the target does not offer")
        spec = AttackSpec(name=name, norm=norm, params=attack_params,
                          eps=list(flag.eps) if rem.curve_only and flag.eps else None)
        key = f"{info.name}-{norm.value}+{flag.id}"
        try:
            self._attack(tgt, st, info, spec, norm, key, None, params, progress, escalation=flag.id)
        except (RuntimeError, AisecError) as exc:
            return result("skipped", f"'{name}' failed: {str(exc).splitlines()[0]}")
        return result("ran", "", key)

    def _curve(
        self, target: Target, x: torch.Tensor, y: torch.Tensor, tl: torch.Tensor | None,
        name: str, kind: AttackKind, norm: Norm, grid: list[float], spec: AttackSpec,
        params: RobustnessParams, progress: Progress, pred_clean: torch.Tensor,
        conf_clean: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        q0 = target.queries
        points: list[dict[str, Any]] = []
        fooled_list: list[torch.Tensor] = []
        dist_list: list[np.ndarray] = []
        preds: list[torch.Tensor] = []
        confs: list[torch.Tensor] = []
        warnings: list[str] = []
        example: dict[str, np.ndarray] | None = None
        saved: dict[str, np.ndarray] | None = None
        traces: list[list[float]] = []
        tags_list: list[list[str | None]] = []  # per eps, what the attack said per sample (an ensemble: its stage)
        tag_order: list[str] = []
        y_cpu = y.cpu()
        if kind is AttackKind.MIN_NORM:
            out = run_attack(name, target, x, y, {"norm": norm, **spec.params}, target_labels=tl,
                             batch_size=params.batch_size, quantize=params.quantize,
                             seed=params.seed, progress=progress, pred_clean=pred_clean)
            warnings += [f"{name} ({norm.value}): {t}" for t in out.notes]
            fooled_any = out.pred_adv != y_cpu
            traces = [list(out.loss_trace) for _ in grid]
            if out.tags:
                tags_list = [list(out.tags) for _ in grid]
                tag_order = list(out.tag_order)
            for eps in grid:
                fooled = fooled_any & (out.distance <= eps + 1e-6)
                points.append({"eps": eps, "raw_robust_accuracy": None})
                fooled_list.append(fooled)
                dist_list.append(np.where(fooled.numpy(), out.distance.numpy(), np.nan))
                preds.append(torch.where(fooled, out.pred_adv, out.pred_clean))
                if out.conf_adv is not None and conf_clean is not None:
                    confs.append(torch.where(fooled, out.conf_adv, conf_clean))
            example = _examples(x, out, params.examples)
            saved = saved_minimal(x, out, params.save_adversarial)
        else:
            best_fooled = torch.zeros_like(y_cpu, dtype=torch.bool)
            best_dist = torch.full((y_cpu.shape[0],), float("nan"))
            best_pred: torch.Tensor | None = None
            best_conf: torch.Tensor | None = None
            prev_raw: float | None = None
            outs: list[Outcome] = []
            for eps in grid:
                out = run_attack(name, target, x, y, {"norm": norm, "eps": eps, **spec.params},
                                 target_labels=tl, batch_size=params.batch_size,
                                 quantize=params.quantize, seed=params.seed, progress=progress, pred_clean=pred_clean)
                outs.append(out)
                traces.append(list(out.loss_trace))
                fooled_now = out.pred_adv != y_cpu
                raw_acc = float((out.robust).float().mean())
                if prev_raw is not None and raw_acc > prev_raw + 1e-12:
                    warnings.append(
                        f"{name} ({norm.value}): raw robust accuracy rose from {prev_raw:.3f} to "
                        f"{raw_acc:.3f} at eps={eps_words(eps)}; the reported curve keeps the smaller-eps "
                        "adversarials. A rising curve hints at gradient masking or too few steps."
                    )
                prev_raw = raw_acc
                new = fooled_now & ~best_fooled
                if out.tags:  # a sample fooled at a smaller eps keeps that eps's tag
                    prev = tags_list[-1] if tags_list else [None] * len(out.tags)
                    tags_list.append([t if nw else p for t, p, nw in zip(out.tags, prev, new.tolist(), strict=True)])
                    tag_order += [t for t in out.tag_order if t not in tag_order]
                best_dist = torch.where(new, out.distance, best_dist)
                best_pred = out.pred_adv if best_pred is None else torch.where(best_fooled, best_pred, out.pred_adv)
                if out.conf_adv is not None:
                    best_conf = out.conf_adv if best_conf is None else torch.where(best_fooled, best_conf,
                                                                                    out.conf_adv)
                best_fooled = best_fooled | fooled_now
                points.append({"eps": eps, "raw_robust_accuracy": raw_acc})
                fooled_list.append(best_fooled.clone())
                dist_list.append(best_dist.numpy().copy())
                preds.append(best_pred.clone())
                if best_conf is not None:
                    confs.append(best_conf.clone())
            mid = outs[len(outs) // 2]
            example = _examples(x, mid, params.examples)
            saved = saved_at_eps(x, y_cpu, outs, grid, saved_eps_index(grid, norm), params.save_adversarial)
        return {
            "attack": name, "norm": norm.value, "kind": kind.value, "targeted": spec.targeted,
            "params": spec.params, "points": points, "fooled": fooled_list, "distances": dist_list,
            "preds": preds, "warnings": warnings, "seconds": time.perf_counter() - t0, "loss_traces": traces,
            "queries": target.queries - q0, **({"example": example} if example is not None else {}),
            **({"confs": confs} if len(confs) == len(grid) else {}), **({"saved": saved} if saved else {}),
            "example_eps": (grid[len(grid) // 2] if kind is AttackKind.FIXED_EPS else None),
            **({"tags": tags_list, "tag_order": tag_order} if len(tags_list) == len(grid) else {}),
        }

    def _clever(
        self, target: Target, x: torch.Tensor, params: RobustnessParams,
        measurements: list[Measurement], table: dict[str, np.ndarray], warnings: list[str],
        progress: Progress,
    ) -> dict[str, CleverSummary] | None:
        cp = params.clever
        if not cp.enabled:
            return None
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
            stats = res.summary()  # one median (of the finite scores) for the evidence, the tile and the figure
            finite = scores[np.isfinite(scores)]
            measurements.append(Measurement(
                metric="robustness.clever_u", value=stats["median"], unit=norm.value, higher_is_better=True,
                interval=median_interval(finite) if finite.size else None, sample_count=int(finite.size),
                parameters={"norm": norm.value, "nb_batches": cp.nb_batches,
                            "batch_size": cp.batch_size, "radius": radius, "statistic": "median"},
                raw_key="samples",
            ))
            col = np.full(x.shape[0], np.nan)
            col[:m] = scores
            table[f"clever_u:{norm.value}"] = col
            out[norm.value] = CleverSummary.model_validate({"scores": scores.tolist(), "radius": radius, **stats})
        return out

    def _certify(self, target: Target, st: _State, params: RobustnessParams,
                 progress: Progress = no_progress) -> list[CertifiedSummary]:
        """Every ``certify`` method on its norm's grid, beside the per-sample worst case of the attacks.

        A certificate about the model as given (``about="model"``: bounds) takes the attacks' successes as its
        counterexamples (an inconclusive sample an attack broke inside the ball), and a sample it proved that an
        attack broke is reported (the certificate would be unsound). A smoothing certificate is about the
        smoothed classifier, which the attacks on the model do not refute: it is shown beside them, not merged.
        """
        cp = params.certify
        if not cp.methods:
            return []
        if st.fixed is not None:
            st.warnings.append("certify skipped: certificates are untargeted and this run is targeted at one class")
            return []
        from aisec.certify import get_certifier

        m = min(cp.samples, int(st.x.shape[0]))
        xs, ys = st.x[:m], st.y[:m]
        correct = st.correct.numpy()[:m]
        out: list[CertifiedSummary] = []
        for method in cp.methods:
            norm = method.resolved_norm()
            grid = _certify_grid(params, norm)
            for label, mparams in method.runs():
                progress(f"certify {label}", 0, m)
                try:
                    certs = get_certifier(method.name)(target, xs, ys, norm.value, grid, mparams)
                except ConfigError:
                    raise
                except AisecError as exc:  # e.g. a layer a bound method does not support: the attacks still count
                    st.warnings.append(f"certify {label} skipped: {str(exc).splitlines()[0]}")
                    continue
                progress(f"certify {label}", m, m)
                points: list[CertifiedPointSummary] = []
                notes: list[str] = []
                for cert in certs:
                    broken, reached = _broken_within(st, norm.value, cert.radius, m)
                    if cert.about == "model":
                        unsound = int(((cert.status == "proved") & (broken | ~correct)).sum())
                        if unsound:
                            st.warnings.append(
                                f"certify {label}: {unsound} sample(s) proved robust at {norm.value} radius "
                                f"{eps_words(cert.radius)} were broken by an attack or are misclassified: the "
                                "certificate is unsound there (a bug in the certifier or a numerical tolerance)")
                        cert = cert.with_counterexamples(broken | ~correct)
                    k, iv = cert.count("proved"), clopper_pearson(cert.count("proved"), m)
                    emp = float((correct & ~broken).sum()) / m if reached else None
                    pp = {"method": method.name, "label": label, "norm": norm.value, "radius": cert.radius,
                          "about": cert.about, "proved": k, "counterexample": cert.count("counterexample"),
                          "inconclusive": cert.count("inconclusive"), "empirical_robust_accuracy": emp,
                          **{kk: v for kk, v in cert.params.items() if isinstance(v, (int, float, str, bool))}}
                    st.measurements.append(Measurement(
                        metric="robustness.certified_accuracy", value=k / m, unit="fraction", higher_is_better=True,
                        interval=iv, sample_count=m, parameters=pp, raw_key="samples"))
                    col = np.full(int(st.x.shape[0]), "", dtype=object)
                    col[:m] = cert.status
                    st.table[f"certify:{label}-{norm.value}@{cert.radius:g}:status"] = col
                    points.append(CertifiedPointSummary(
                        radius=cert.radius, certified_accuracy=k / m, ci=IntervalSummary.from_interval(iv), proved=k,
                        counterexample=cert.count("counterexample"), inconclusive=cert.count("inconclusive"),
                        empirical=emp, gap=None if emp is None else emp - k / m))
                    notes += [n for n in cert.notes if n not in notes]
                if certs and certs[0].certified_radius is not None:
                    col_r = np.full(int(st.x.shape[0]), np.nan)
                    col_r[:m] = certs[0].certified_radius
                    st.table[f"certify:{label}-{norm.value}:certified_radius"] = col_r
                if certs and certs[0].about == "smoothed":
                    notes.append("about the smoothed classifier, not the model the attacks ran on: the empirical "
                                 "column is the model's and need not bound it (attack the SmoothedTarget for that)")
                out.append(CertifiedSummary(
                    method=method.name, label=label, norm=norm.value, about=certs[0].about if certs else "model",
                    samples=m, seconds=_seconds(certs), params=mparams, notes=notes, points=points))
        return out


def _seconds(certs: Sequence[Any]) -> float:
    """The time of a certifier run: one figure when every certificate carries the same (one pass for all radii,
    as smoothing), else their sum (one pass per radius)."""
    times = {float(c.seconds) for c in certs}
    return times.pop() if len(times) == 1 else sum(float(c.seconds) for c in certs)


def _certify_grid(params: RobustnessParams, norm: Norm) -> list[float]:
    """The radii a certifier runs at: the check's grid of the norm (as the attacks get it), with the reference."""
    given = {Norm.LINF: params.eps, Norm.L2: params.eps_l2}.get(norm)
    grid = {float(e) for e in (given if given is not None else DEFAULT_EPS[norm])}
    ref = params.reference_eps.get(norm.value)
    if ref is not None and ref > 0 and not any(math.isclose(e, ref, rel_tol=1e-3) for e in grid):
        grid.add(float(ref))
    return sorted(grid)


def _broken_within(st: _State, norm: str, radius: float, m: int) -> tuple[np.ndarray, bool]:
    """Per sample (the first ``m``), whether any attack of ``norm`` fooled it within ``radius``, and whether any
    attack's grid reached down to that radius (else there is no empirical number to compare with)."""
    broken = np.zeros(m, dtype=bool)
    reached = False
    for r in st.records:
        if r.norm != norm:
            continue
        below = [j for j, e in enumerate(r.eps) if e <= radius + 1e-12]
        if below:
            reached = True
            broken |= np.asarray(r.fooled[max(below)], dtype=bool)[:m]
    return broken, reached


@dataclass
class _State:
    """What the check accumulates while its attacks run (the per-attack scoring appends to it)."""

    x: torch.Tensor
    y: torch.Tensor
    yc: torch.Tensor
    correct: torch.Tensor
    pred_clean: torch.Tensor
    n: int
    measurements: list[Measurement]
    table: dict[str, np.ndarray]
    warnings: list[str]
    #: the samples counted (all, or those not of the fixed target class) and that class
    inc: torch.Tensor
    fixed: int | None = None
    #: the attacks selected to run (``all`` expanded, ``skip`` applied)
    attacks: list[AttackSpec] = field(default_factory=list)
    curves: list[CurveSummary] = field(default_factory=list)
    records: list[CurveRecord] = field(default_factory=list)
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    #: (norm, eps) of each reference budget added to a grid, and the curves it was added to
    reference_added: dict[tuple[str, float], list[str]] = field(default_factory=dict)
    #: the target's confidence in its clean prediction, per sample
    conf_clean: torch.Tensor | None = None
    artefacts: list[Artefact] = field(default_factory=list)
    #: a table's own units, for the adversarial rows written as artefacts
    units: TableUnits | None = None


def _probabilities(target: Target, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``target``'s class probabilities on ``x``, batch by batch, on the CPU."""
    with torch.no_grad():
        return torch.cat([target.predict(x[i : i + batch_size]).cpu() for i in range(0, int(x.shape[0]), batch_size)])


def _broken_by(tags: Sequence[str | None], success: torch.Tensor, correct: torch.Tensor) -> np.ndarray:
    """Per sample, the stage (tag) that broke it: ``clean`` when misclassified unattacked, empty when robust,
    ``unattributed`` when it was fooled only after the attack returned (e.g. by 8-bit rounding)."""
    out = np.full(len(tags), "", dtype=object)
    for i, (t, ok, hit) in enumerate(zip(tags, correct.tolist(), success.tolist(), strict=True)):
        if not ok:
            out[i] = CLEAN
        elif hit:
            out[i] = t if t is not None and t != CLEAN else "unattributed"
    return out


def _stage_robust(broken: np.ndarray, correct: torch.Tensor, order: Sequence[str]) -> dict[str, int]:
    """Samples still robust after each stage (run order, cumulative) from the per-sample ``broken_by``."""
    left, out = int(correct.sum()), {}
    for stage in order:
        if stage != CLEAN:
            left -= int((broken == stage).sum())
            out[stage] = left
    return out


def _identity(name: str, norm: str, wrap: str | None, attack_params: Mapping[str, Any]) -> str:
    """What makes two attack runs the same run (for the escalation's "already ran")."""
    return json.dumps([name, norm, wrap, {k: attack_params[k] for k in sorted(attack_params)}], default=str)


def _probe(target: Target, x: torch.Tensor, y: torch.Tensor,
           rp: ReliabilityParams) -> tuple[list[ReliabilityFlag], dict[str, str]]:
    """The probe flags (gradients, randomness, probability outputs) and what each probe saw."""
    xs, ys = x[: rp.probe_samples], y[: rp.probe_samples]
    flags: list[ReliabilityFlag] = []
    probes: dict[str, str] = {}
    caps = target.spec.capabilities
    if Capability.GRADIENTS in caps:
        g = probe_gradients(target, xs, ys)
        probes["gradients"] = g.detail
        if g.status == "none":
            flags.append(ReliabilityFlag("no_gradient_path", g.detail))
        elif g.status == "zero":
            flags.append(ReliabilityFlag("zero_gradients", g.detail))
    else:
        probes["gradients"] = "not probed: the target offers no gradients (black box)"
    randomized, text = probe_randomness(target, xs)
    if not randomized and getattr(target, "stochastic", False) is True:  # e.g. a SmoothedTarget: declared random
        randomized, text = True, text + " The target declares itself stochastic (fresh noise per query)."
    probes["randomness"] = text
    if randomized:
        flags.append(ReliabilityFlag("randomized", text))
    if target.spec.output is OutputKind.LOGITS and Capability.LOGITS in caps:
        probs, text = probe_probabilities(target, xs)
        probes["probabilities"] = text or "not probed"
        if probs:
            flags.append(ReliabilityFlag("probability_outputs", text))
    return flags, probes


def _reference_notes(st: _State) -> list[str]:
    """One line per reference budget the check added to a grid, naming the curves it was added to."""
    return [f"{eps_words(eps)} added to the {norm} eps grid ({', '.join(keys)}): it is the reference budget "
            "the verdict reads robustness at" for (norm, eps), keys in sorted(st.reference_added.items())]


def _worst_case(st: _State, params: RobustnessParams) -> list[WorstCaseSummary]:
    """Per norm, the per-sample worst case over every curve, as measurements, table columns and summaries."""
    out = []
    correct = st.correct.numpy()
    for norm in sorted({r.norm for r in st.records}):
        points = worst_case(correct, st.records, norm)
        summaries = []
        for p in points:
            iv = wilson(p.robust, st.n)
            st.measurements.append(Measurement(
                metric="robustness.worst_case_robust_accuracy", value=p.robust / st.n, unit="fraction",
                higher_is_better=True, interval=iv, sample_count=st.n, raw_key="samples",
                parameters={"norm": norm, "eps": p.eps, "attacks": list(p.attacks), "quantize": params.quantize},
            ))
            summaries.append(WorstPointSummary(eps=p.eps, robust_accuracy=p.robust / st.n,
                                               ci=IntervalSummary.from_interval(iv), attacks=list(p.attacks)))
            fooled = np.zeros(correct.shape[0], dtype=bool)  # per sample (st.n counts only the scored ones)
            for r in st.records:
                if r.norm == norm and r.key in p.attacks:
                    i = max(j for j, e in enumerate(r.eps) if e <= p.eps + 1e-12)
                    fooled |= r.fooled[i]
            st.table[f"worst-{norm}@{p.eps:g}:fooled"] = fooled
        out.append(WorstCaseSummary(norm=norm, attacks=[r.key for r in st.records if r.norm == norm],
                                    points=summaries))
    return out


def _curve_to_step(curve: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One attack's curve as a checkpoint step: its JSON facts and its per-sample arrays."""
    keys = ("attack", "norm", "kind", "targeted", "params", "points", "warnings", "seconds", "queries", "example_eps",
            "loss_traces", "tags", "tag_order")
    doc: dict[str, Any] = {k: curve[k] for k in keys if k in curve}
    doc["example_keys"] = sorted(curve.get("example", {}) or {})
    doc["saved_keys"] = sorted(curve.get("saved", {}) or {})
    arrays: dict[str, np.ndarray] = {}
    for i, (f, d, p) in enumerate(zip(curve["fooled"], curve["distances"], curve["preds"], strict=True)):
        arrays[f"fooled{i}"], arrays[f"distance{i}"], arrays[f"pred{i}"] = f.numpy(), np.asarray(d), p.numpy()
    for i, c in enumerate(curve.get("confs", [])):
        arrays[f"conf{i}"] = c.numpy()
    for k in doc["example_keys"]:
        arrays[f"example:{k}"] = np.asarray(curve["example"][k])
    for k in doc["saved_keys"]:
        arrays[f"saved:{k}"] = np.asarray(curve["saved"][k])
    return doc, arrays


def _curve_from_step(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The curve :func:`_curve_to_step` kept."""
    n = len(doc["points"])
    curve = {k: v for k, v in doc.items() if k not in ("example_keys", "saved_keys")}
    curve.setdefault("loss_traces", [[] for _ in range(n)])  # a step kept before traces were
    curve["fooled"] = [torch.from_numpy(arrays[f"fooled{i}"]) for i in range(n)]
    curve["distances"] = [arrays[f"distance{i}"] for i in range(n)]
    curve["preds"] = [torch.from_numpy(arrays[f"pred{i}"]) for i in range(n)]
    if doc["example_keys"]:
        curve["example"] = {k: arrays[f"example:{k}"] for k in doc["example_keys"]}
    if all(f"conf{i}" in arrays for i in range(n)):
        curve["confs"] = [torch.from_numpy(arrays[f"conf{i}"]) for i in range(n)]
    if doc.get("saved_keys"):
        curve["saved"] = {k: arrays[f"saved:{k}"] for k in doc["saved_keys"]}
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
    # a curve through a BPDA / EOT wrapper is not the plain attack (BPDA: not even the same model)
    by = {(c["attack"], c["norm"], c["targeted"]): c for c in curves if c.get("wrapper") is None}
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
                        f"FGSM beats {multi.upper()} at eps={eps_words(p['eps'])} ({nrm}): robust accuracy "
                        f"{fr[p['eps']]:.3f} vs {p['raw_robust_accuracy']:.3f}. Iterative attacks should "
                        "be at least as strong; suspect gradient masking or raise the steps."
                    )
    return warnings


__all__ = ["ATLAS_EVASION", "CleverParams", "CleverSummary", "CurveSummary", "PointSummary", "RobustnessCheck",
           "RobustnessParams", "RobustnessSummary", "TextCurveSummary", "TextRobustnessSummary", "eps_words"]


# -- issue 15, item 4: the defence's cost and gain (the report's Defences table) ------------------------------

#: the reliability flags whose remedies are adaptive attacks on a defence (BPDA, EOT, black box)
ADAPTIVE_FLAGS = frozenset({"zero_gradients", "no_gradient_path", "randomized", "blackbox_beats_whitebox"})


def defence_summary(
    target: Target, x: torch.Tensor, yc: torch.Tensor, clean_accuracy: float, curves: Sequence[CurveSummary],
    worst: Sequence[WorstCaseSummary], reliability: ReliabilitySummary | None, params: RobustnessParams, t0: float,
) -> DefenceSummary | None:
    """For a target behind a preprocessing defence (``DefendedTarget``): the undefended model's clean accuracy on
    the same samples, and the robust accuracies at the reference budget of one norm (Linf when it ran) under
    the AutoAttack ensemble, under the adaptive attacks (BPDA / EOT / black box, from the plan or the
    reliability escalation) and in the worst case. None for any other target."""
    record = getattr(target, "defence_record", None)
    inner = getattr(target, "target", None)
    if record is None or inner is None:
        return None
    undefended = int((_probabilities(inner, x, params.batch_size).argmax(1) == yc).sum()) / max(int(yc.shape[0]), 1)
    norms = [w.norm for w in worst] or list(dict.fromkeys(c.norm for c in curves))
    norm = "linf" if "linf" in norms else (norms[0] if norms else None)
    ref = params.reference_eps.get(norm) if norm is not None else None

    def at(points: Sequence[PointSummary | WorstPointSummary]) -> float | None:
        hit = [p.robust_accuracy for p in points if ref is not None and math.isclose(p.eps, ref, rel_tol=1e-3)]
        return hit[0] if hit else None

    mine = [c for c in curves if c.norm == norm]
    auto = [v for c in mine if c.attack == "autoattack" and c.escalation is None if (v := at(c.points)) is not None]
    adaptive = [(c.key, v) for c in mine if (c.escalation in ADAPTIVE_FLAGS or c.wrapper is not None)
                if (v := at(c.points)) is not None]
    w = next((at(wc.points) for wc in worst if wc.norm == norm), None)
    return DefenceSummary(
        defence=str(record["spec"]), differentiable=bool(record["differentiable"]),
        stochastic=bool(record["stochastic"]), undefended_clean_accuracy=undefended, clean_accuracy=clean_accuracy,
        clean_cost=undefended - clean_accuracy, norm=norm, eps=ref,
        autoattack_robust_accuracy=min(auto) if auto else None,
        adaptive_robust_accuracy=min(v for _, v in adaptive) if adaptive else None,
        adaptive_attacks=[k for k, _ in adaptive], worst_robust_accuracy=w,
        safair_delta=clean_accuracy - w if w is not None else None,
        reliable=reliability.reliable if reliability is not None else None, seconds=time.perf_counter() - t0,
    )
