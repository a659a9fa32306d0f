"""The threat-model file: who attacks the AI system, knowing and able to do what, and at what cost.

A threat model is what an assessment answers (BSI AIC4 SR-02: scenarios, goals, knowledge,
capabilities; the JRC paper's call for realistic attacker goals, resources and costs). aisec reads it
from YAML, validates it (``extra="forbid"``: a typo is an error, not a silent default) and turns it
into the plan that tests exactly that (:func:`aisec.threats.planner.plan_for`).

.. code-block:: yaml

    name: digits kiosk
    assets: [the classifier, its training data]
    system:
      modality: image                 # image | text | tabular
      access: scores                  # what the attacker gets: weights | scores | labels | none
      deployment: cloud-api           # cloud-api | on-device | training-pipeline
      rate_limit: 60                  # queries per minute the API allows (cloud-api only)
    attacker:
      goals: [evasion-untargeted, poisoning, membership, extraction]
      knowledge: black                # white | grey | black
      capabilities:
        perturbation: {domain: linf, budget: 0.1}
        query_budget: 1000            # queries per attacked input (and for a copy of the model)
        training_data_share: 0.05     # share of the training data the attacker controls
      costs: {per_query: 0.001, currency: EUR}
    out_of_scope:
      - {threat: AML.T0041, why: the kiosk camera sits behind glass}
    model: digits-cnn                 # the system under test (optional: aisec plan -m)
    data: {source: digits, options: {split: test}}
    training_data: {source: digits, options: {split: train}}   # the members (membership goal)
    assessment: {samples: 100}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aisec.core.errors import ConfigError
from aisec.core.plan import DataRef, ModelRef
from aisec.core.safety import read_yaml_mapping, validation_lines

Modality = Literal["image", "text", "tabular"]
Access = Literal["weights", "scores", "labels", "none"]
Deployment = Literal["cloud-api", "on-device", "training-pipeline"]
Knowledge = Literal["white", "grey", "black"]
Goal = Literal["evasion-untargeted", "evasion-targeted", "poisoning", "membership", "extraction", "inversion",
               "model-tampering", "availability"]
Domain = Literal["linf", "l2", "l0", "patch", "word-swaps", "tabular-rows"]

#: perturbation domains each modality admits
_DOMAINS: dict[str, frozenset[str]] = {
    "image": frozenset({"linf", "l2", "l0", "patch"}),
    "tabular": frozenset({"linf", "l2", "l0", "tabular-rows"}),
    "text": frozenset({"word-swaps"}),
}
EVASION_GOALS = frozenset({"evasion-untargeted", "evasion-targeted"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class System(_Strict):
    """The AI system as the attacker meets it."""

    modality: Modality
    access: Access = Field(description="What the attacker gets from the model: its weights, its scores "
                           "(probabilities), its labels only, or no query access at all.")
    deployment: Deployment
    rate_limit: float | None = Field(default=None, gt=0, description="Queries per minute the API allows "
                                     "(cloud-api): turns a query count into the attacker's wall-clock time.")
    defences: list[str] = Field(default_factory=list, description="Defences in place: a preprocessing defence "
                                "(jpeg:quality=75, applied in front of the model when the plan runs) or a "
                                "training defence the model was trained with (training:pgd-at, declared).")


class Perturbation(_Strict):
    """How the attacker may change an input, and by how much."""

    domain: Domain
    budget: float = Field(gt=0, description="eps for linf/l2, the share of features for l0, the patch side "
                          "in pixels, the number of words swapped, or the linf eps of a valid tabular row.")


class Capabilities(_Strict):
    perturbation: Perturbation | None = None
    query_budget: int | None = Field(default=None, ge=1, description="Queries the attacker can send per "
                                     "attacked input (and in all, to copy the model).")
    training_data_share: float | None = Field(default=None, gt=0, le=1, description="Share of the training "
                                              "data the attacker controls (poisoning).")


class Costs(_Strict):
    """What the attacker pays: turns measured queries and seconds into money and time."""

    per_query: float | None = Field(default=None, ge=0, description="Money per query to the API.")
    currency: str = "EUR"
    compute_hours: float | None = Field(default=None, gt=0, description="Compute the attacker can spend, hours.")


class Attacker(_Strict):
    goals: list[Goal] = Field(min_length=1)
    knowledge: Knowledge
    capabilities: Capabilities = Field(default_factory=Capabilities)
    costs: Costs = Field(default_factory=Costs)

    @field_validator("goals")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"goals are listed twice: {sorted({g for g in v if v.count(g) > 1})}")
        return v


class OutOfScope(_Strict):
    threat: str = Field(description="A threat id of the knowledge base (aisec threats list).")
    why: str = Field(min_length=1)


class Assessment(_Strict):
    """How thoroughly aisec tests (not the attacker's means): samples attacked, seed."""

    samples: int = Field(default=200, ge=1, le=100_000)
    seed: int = 0


class ThreatModel(_Strict):
    """A validated threat model (see the module docstring for the file)."""

    name: str = Field(min_length=1)
    description: str = ""
    assets: list[str] = Field(default_factory=list)
    system: System
    attacker: Attacker
    out_of_scope: list[OutOfScope] = Field(default_factory=list)
    model: ModelRef | None = None
    data: DataRef | None = None
    training_data: DataRef | None = Field(
        default=None, description="The records the model was trained on: the members a membership attacker "
        "wants to pick out (default: none, and membership is not tested).")
    assessment: Assessment = Field(default_factory=Assessment)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @field_validator("data", "training_data", mode="before")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return {"source": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _coherent(self) -> ThreatModel:
        s, a, c = self.system, self.attacker, self.attacker.capabilities
        goals = set(a.goals)
        if s.access == "weights" and a.knowledge != "white":
            raise ValueError(f"system.access weights hands the attacker the weights, so attacker.knowledge is "
                             f"white, not {a.knowledge}")
        if s.rate_limit is not None and s.deployment != "cloud-api":
            raise ValueError(f"system.rate_limit applies to a cloud-api deployment, not {s.deployment}")
        if goals & EVASION_GOALS:
            if c.perturbation is None:
                raise ValueError("evasion goals need attacker.capabilities.perturbation (domain and budget)")
            if c.perturbation.domain not in _DOMAINS[s.modality]:
                raise ValueError(f"perturbation domain {c.perturbation.domain} does not apply to {s.modality} "
                                 f"inputs; use one of {sorted(_DOMAINS[s.modality])}")
            if c.perturbation.domain in ("word-swaps", "patch") and c.perturbation.budget != int(c.perturbation.budget):
                raise ValueError(f"a {c.perturbation.domain} budget counts whole "
                                 f"{'words' if c.perturbation.domain == 'word-swaps' else 'pixels'}, "
                                 f"got {c.perturbation.budget:g}")
            if a.knowledge != "white" and s.access in ("scores", "labels") and c.query_budget is None:
                raise ValueError(f"a {a.knowledge}-box attacker with {s.access} access evades by querying: give "
                                 "attacker.capabilities.query_budget")
        if "poisoning" in goals and c.training_data_share is None:
            raise ValueError("the poisoning goal needs attacker.capabilities.training_data_share (e.g. 0.05)")
        if "extraction" in goals and s.access in ("scores", "labels") and c.query_budget is None:
            raise ValueError("the extraction goal needs attacker.capabilities.query_budget (queries to copy "
                             "the model)")
        from aisec.threats.kb import load_kb

        kb = load_kb()
        for o in self.out_of_scope:
            if kb.threat(o.threat) is None:
                raise ValueError(f"out_of_scope names unknown threat {o.threat}; see `aisec threats list`")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> ThreatModel:
        raw = read_yaml_mapping(path, what="threat-model file", holds="system and attacker")
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "threat model") -> ThreatModel:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid threat model {source}: {'; '.join(validation_lines(exc))}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)
