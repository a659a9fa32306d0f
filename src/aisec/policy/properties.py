"""From aisec evidence to Clouditor's ``MachineLearningModel`` properties (table-driven).

Clouditor's AISecurity metrics (security-metrics ``metrics/AISecurity``) judge six properties, each
on its own scale and direction. :data:`PROPERTIES` says, per property, which aisec metrics feed it,
how one value is chosen when a run measured many (per attack, eps, norm), and how it is converted.
A new check adds a :class:`Source` row here (and its metric to ``policy/catalogue.yaml``).

========================== ========= ============ =============== ==================================================
property                   scale     better       Clouditor gate  aisec source (first that has evidence wins)
========================== ========= ============ =============== ==================================================
adversarialRobustnessScore [0, 1]    higher       >= 0.5          per-sample worst case over attacks at the reference
                                                                  eps; else min robust accuracy over attacks there;
                                                                  else min(1, CLEVER-u / reference eps)
evasionEfficacyLevel       % [0,100] lower        < 33            100 x max attack success rate at the reference eps
membershipInferenceResil.  [0, 1]    lower        <= 0.5          max MIA advantage 2*AUC-1 (clipped to [0, 1])
poisoningResilienceLevel   [0, 1]    lower        <= 0.5          max backdoor attack success rate; else 1-resilience
poisonedDataLevel          % [0,100] lower        <= 5            100 x share of training data flagged as poisoned
modelStealResilience       % [0,100] lower        < 70            100 x max surrogate fidelity (agreement)
modelFileVulnerabilities   count     lower        (none; <= 0)    high/critical findings of the model-scan check
explainabilityEnabled      bool      true         == true         true iff an explainability check produced evidence
explainability             [0, 1]    higher       (none)          mean deletion/insertion faithfulness
========================== ========= ============ =============== ==================================================

Reference eps (``Reference``): the conventional RobustBench budgets, Linf 8/255 and L2 0.5, for
inputs in [0, 1]. The robustness check measures each of them (it adds the reference eps to the grid of
its norm; ``aisec assess --policy`` passes the policy's budgets), so the point used is the reference's
own. From a curve recorded without it (older evidence, ``reference_eps: {}``) the point at the largest
recorded eps not above the reference (within 0.1 %) is used; if every recorded eps is above it, the
smallest one (a stronger attack than asked, so the score errs on the safe side). Policies may set other
budgets (``reference_eps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisec.core.evidence import Evidence
from aisec.core.types import REFERENCE_EPS


class Reference(BaseModel):
    """Attack budgets at which robustness properties are read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    eps: dict[str, float] = Field(default_factory=lambda: dict(REFERENCE_EPS))


class Derived(BaseModel):
    """One property value and the evidence it came from."""

    model_config = ConfigDict(frozen=True)

    property: str
    value: float | bool
    evidence_ids: tuple[str, ...]
    basis: str = Field(description="How the value was obtained, in words.")


Pick = Literal["reference_eps", "all"]
Aggregate = Literal["min", "max", "mean", "any"]


@dataclass(frozen=True)
class Source:
    """One way to obtain a property from aisec metrics."""

    metric: str
    aggregate: Aggregate
    transform: str = "identity"
    pick: Pick = "all"
    prefix: bool = False  # metric is a prefix (e.g. "explainability.")


@dataclass(frozen=True)
class PropertySpec:
    name: str
    clouditor_metric: str
    operator: str
    target: float | bool
    scale: str
    higher_is_better: bool
    sources: tuple[Source, ...] = field(default_factory=tuple)


#: What each Clouditor property means, in plain words (the reports show these beside the property id).
PLAIN_TITLES: dict[str, str] = {
    "adversarialRobustnessScore": "Accuracy under the strongest attack at the reference budget",
    "evasionEfficacyLevel": "Share of correct predictions an evasion attack can flip (%)",
    "membershipInferenceResilience": "How well an attacker tells training records from others (AUC advantage)",
    "poisoningResilienceLevel": "Success rate of a backdoor planted through poisoned training data",
    "poisonedDataLevel": "Share of training data flagged as poisoned",
    "modelStealResilience": "How closely a stolen copy agrees with the model",
    "modelFileVulnerabilities": "Dangerous code found in the model file",
    "explainabilityEnabled": "An explainability check ran",
    "explainability": "How faithful the explanations are",
}

PROPERTIES: dict[str, PropertySpec] = {p.name: p for p in (
    PropertySpec("adversarialRobustnessScore", "AdversarialRobustness", ">=", 0.5, "[0, 1]", True, (
        Source("robustness.worst_case_robust_accuracy", "min", pick="reference_eps"),
        Source("robustness.robust_accuracy", "min", pick="reference_eps"),
        Source("robustness.clever_u", "min", transform="clever_over_eps"),
    )),
    PropertySpec("evasionEfficacyLevel", "EvasionAttackEfficacy", "<", 33.0, "% [0, 100]", False, (
        Source("robustness.attack_success_rate", "max", transform="percent", pick="reference_eps"),
    )),
    PropertySpec("membershipInferenceResilience", "MembershipInferenceResilience", "<=", 0.5, "[0, 1]", False, (
        Source("privacy.mia_auc", "max", transform="auc_advantage"),
    )),
    PropertySpec("poisoningResilienceLevel", "PoisoningResilience", "<=", 0.5, "[0, 1]", False, (
        Source("poisoning.attack_success_rate", "max"),
        Source("poisoning.resilience", "min", transform="one_minus"),
    )),
    PropertySpec("poisonedDataLevel", "DataPoisoningDetected", "<=", 5.0, "% [0, 100]", False, (
        Source("poisoning.poisoned_fraction", "max", transform="percent"),
    )),
    PropertySpec("modelStealResilience", "ModelStealResilience", "<", 70.0, "% [0, 100]", False, (
        Source("extraction.fidelity", "max", transform="percent"),
    )),
    # not a Clouditor AISecurity metric: Clouditor-style "vulnerabilities" of the model file (aisec's model-scan).
    # No default gate (the defaults are Clouditor's); gate it with a rule: {metric: modelFileVulnerabilities,
    # operator: "<=", target: 0}
    PropertySpec("modelFileVulnerabilities", "", "", 0.0, "count", False, (
        Source("model_scan.unsafe_findings", "max"),
    )),
    PropertySpec("explainabilityEnabled", "ExplainabilityEnabled", "==", True, "bool", True, (
        Source("explainability.", "any", transform="present", prefix=True),
    )),
    PropertySpec("explainability", "", "", 0.0, "[0, 1]", True, (
        Source("explainability.faithfulness_", "mean", prefix=True),
    )),
)}

TRANSFORMS: dict[str, Callable[[float, Evidence, Reference], float]] = {
    "identity": lambda v, e, ref: v,
    "percent": lambda v, e, ref: 100.0 * v,
    "one_minus": lambda v, e, ref: 1.0 - v,
    "auc_advantage": lambda v, e, ref: min(1.0, max(0.0, 2.0 * v - 1.0)),
    "clever_over_eps": lambda v, e, ref: _clever_over_eps(v, e, ref),
}


def _clever_over_eps(v: float, e: Evidence, ref: Reference) -> float:
    """CLEVER-u (an estimated minimum adversarial distance) as a fraction of the reference budget, capped at 1."""
    budget = ref.eps.get(str(e.parameters.get("norm", "")))
    return min(1.0, v / budget) if budget else math.nan


def derive_properties(evidence: Sequence[Evidence], reference: Reference | None = None) -> dict[str, Derived]:
    """Every Clouditor property the evidence supports (missing ones are absent, never guessed)."""
    ref = reference or Reference()
    out: dict[str, Derived] = {}
    for spec in PROPERTIES.values():
        d = derive(spec, evidence, ref)
        if d is not None:
            out[spec.name] = d
    return out


def derive(spec: PropertySpec, evidence: Sequence[Evidence], ref: Reference) -> Derived | None:
    for src in spec.sources:
        records = [e for e in evidence if (e.metric.startswith(src.metric) if src.prefix else e.metric == src.metric)]
        if src.transform == "present":
            if records:
                return Derived(property=spec.name, value=True, evidence_ids=tuple(e.id for e in records),
                               basis=f"{len(records)} {src.metric}* record(s) present")
            continue
        records = [e for e in records if math.isfinite(e.value)]
        basis = ""
        if src.pick == "reference_eps":
            records, basis = at_reference_eps(records, ref)
        values = [(TRANSFORMS[src.transform](e.value, e, ref), e) for e in records]
        values = [(v, e) for v, e in values if math.isfinite(v)]
        if not values:
            continue
        value, used = _aggregate(values, src.aggregate)
        how = f"{src.aggregate} of {len(values)} {src.metric}{'*' if src.prefix else ''} value(s)"
        if src.transform != "identity":
            how += f" via {src.transform}"
        return Derived(property=spec.name, value=value, evidence_ids=tuple(e.id for e in used),
                       basis=how + (f"; {basis}" if basis else ""))
    return None


def at_reference_eps(records: Sequence[Evidence], ref: Reference) -> tuple[list[Evidence], str]:
    """Per attack curve (attack, norm, targeted), the record at the eps chosen for the reference budget."""
    curves: dict[tuple[Any, ...], list[Evidence]] = {}
    for e in records:
        norm = str(e.parameters.get("norm", ""))
        if norm not in ref.eps or "eps" not in e.parameters:
            continue
        key = (e.parameters.get("attack") or "worst case", norm, bool(e.parameters.get("targeted", False)))
        curves.setdefault(key, []).append(e)
    chosen: list[Evidence] = []
    notes: list[str] = []
    for (attack, norm, targeted), curve in sorted(curves.items(), key=lambda kv: str(kv[0])):
        budget = ref.eps[norm]
        below = [e for e in curve if float(e.parameters["eps"]) <= budget * (1 + 1e-3)]
        pick = max(below, key=lambda e: float(e.parameters["eps"])) if below else \
            min(curve, key=lambda e: float(e.parameters["eps"]))
        chosen.append(pick)
        notes.append(f"{attack}/{norm}{'/targeted' if targeted else ''} at eps {float(pick.parameters['eps']):.4g}")
    ref_text = ", ".join(f"{k} {v:.4g}" for k, v in sorted(ref.eps.items()))
    return chosen, (f"reference eps {ref_text}: " + ", ".join(notes)) if notes else ""


def _aggregate(values: list[tuple[float, Evidence]], how: Aggregate) -> tuple[float, list[Evidence]]:
    if how == "min":
        v, e = min(values, key=lambda t: t[0])
        return v, [e]
    if how == "max":
        v, e = max(values, key=lambda t: t[0])
        return v, [e]
    return sum(v for v, _ in values) / len(values), [e for _, e in values]
