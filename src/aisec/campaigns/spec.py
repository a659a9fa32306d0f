"""Campaign files: many models × defences × datasets × checks × parameter grids, as one YAML file.

A campaign expands into *jobs*, one per combination; each job is one ordinary plan
(:class:`aisec.core.plan.Plan`) with one check, so a job's run folder, evidence and report are those
of ``aisec assess``. ``extra="forbid"`` everywhere: a typo is an error, not a silent default.

.. code-block:: yaml

    name: nightly
    models:
      - digits-cnn
      - {path: cnn-seed1.safetensors, arch: "aisec.models.zoo:DigitsCNN", name: cnn-seed1}
    defences: [null, "bit-depth:bits=4"]        # null: the model as it is
    datasets: [digits]
    checks:
      robustness: {attacks: [fgsm, pgd], samples: 64, clever: {enabled: false}}
    grid:                                       # each list is one axis of the product
      robustness: {eps: [[0.05], [0.1]]}
    limits: {seconds_per_job: 600, seconds_per_1000_samples: 14400}   # SAFAIR: 4 h per 1,000 samples
    budget: {samples: 100, queries: 10000, confirm_above_seconds: 600}
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aisec.campaigns.contest import CONTEST_EPS, CONTEST_SECONDS_PER_1000, ContestRules
from aisec.core.errors import ConfigError
from aisec.core.plan import DataRef, ModelRef, Plan
from aisec.core.safety import read_yaml_mapping, short_repr, validation_lines

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class CampaignModel(ModelRef):
    """A model of the campaign: a :class:`ModelRef` and the name the leaderboard shows."""

    name: str | None = Field(default=None, description="Leaderboard name (default: the file stem or built-in name).")

    @field_validator("defence")
    @classmethod
    def _no_defence(cls, v: str | None) -> str | None:
        if v is not None:
            raise ValueError("give defences in the campaign's 'defences' list, not on a model")
        return v

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        ref = self.path.rstrip("/")
        return Path(ref).stem if ref.endswith((".pt", ".pth", ".safetensors", ".onnx", ".pkl", ".joblib")) else ref


class Limits(BaseModel):
    """Time limits of one job; the smaller applies (the SAFAIR contest allowed 4 hours per 1,000 samples)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seconds_per_job: float | None = Field(default=None, gt=0)
    seconds_per_1000_samples: float | None = Field(default=None, gt=0)

    def for_samples(self, samples: int | None) -> float | None:
        """The limit of a job over ``samples`` samples (None: no limit)."""
        limits = [x for x in (self.seconds_per_job,) if x is not None]
        if self.seconds_per_1000_samples is not None and samples:
            limits.append(self.seconds_per_1000_samples * samples / 1000)
        return min(limits) if limits else None


class Budget(BaseModel):
    """Caps applied to every job, and the estimated cost above which a run needs ``--yes``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    samples: int | None = Field(default=None, ge=1, description="At most this many samples per job.")
    queries: int | None = Field(default=None, ge=1, description="Query cap of every model (black-box targets).")
    confirm_above_seconds: float = Field(default=600.0, ge=0, description="Ask for --yes above this estimate.")


class ThreatModel(BaseModel):
    """One leaderboard table: robust accuracy at this norm and budget."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    norm: str = "linf"
    eps: float = Field(gt=0)


def _undefended() -> list[str | None]:
    return [None]


class Campaign(BaseModel):
    """A campaign file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    models: list[CampaignModel] = Field(min_length=1)
    defences: list[str | None] = Field(default_factory=lambda: _undefended(), min_length=1)
    datasets: list[DataRef] = Field(min_length=1)
    checks: dict[str, dict[str, Any]] = Field(min_length=1)
    grid: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    seed: int = 0
    limits: Limits = Field(default_factory=Limits)
    budget: Budget = Field(default_factory=Budget)
    threat_models: list[ThreatModel] = Field(
        default_factory=list, description="Leaderboard tables (default: every robustness reference budget run).")
    contest: bool | ContestRules = Field(
        default=False, description="SAFAIR contest rules: Linf 8/255, adversarials rounded to 8-bit pixel values, "
        "4 hours per 1,000 samples unless limits say otherwise, leaderboard ranked by SAFAIR delta. A mapping "
        "(a contest block, :class:`aisec.campaigns.contest.ContestRules`) also names the dataset and seed of "
        "the hidden test split and the attack and defence submissions.")
    store: str | None = Field(default=None, description="Evidence store URL (default: evidence.db in the out folder).")
    out: str | None = Field(default=None, description="Campaign folder (default: <file's folder>/<name>).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-' (at most 64), got {short_repr(v)}")
        return v

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        return [{"path": m} if isinstance(m, str) else m for m in v] if isinstance(v, list) else v

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, v: Any) -> Any:
        return [{"source": d} if isinstance(d, str) else d for d in v] if isinstance(v, list) else v

    @field_validator("defences", mode="before")
    @classmethod
    def _defences(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [None if d in (None, "", "none") else d for d in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        labels = [m.label for m in self.models]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"models share the name(s) {dup}; give each a distinct 'name'")
        if len(set(self.defences)) != len(self.defences):
            raise ValueError("defences lists a defence twice")
        if self.contest:
            if "robustness" not in self.checks:
                raise ValueError("contest mode ranks robustness: add a robustness check")
            rob = {**self.checks["robustness"], **self.grid.get("robustness", {})}
            if rob.get("quantize") is False or (isinstance(rob.get("quantize"), list) and False in rob["quantize"]):
                raise ValueError("contest mode rounds adversarials to 8-bit pixel values; drop quantize: false")
            if self.limits.seconds_per_1000_samples is None:
                self.limits = self.limits.model_copy(update={"seconds_per_1000_samples": CONTEST_SECONDS_PER_1000})
            if not self.threat_models:
                self.threat_models = [ThreatModel(norm="linf", eps=CONTEST_EPS)]
        for check, axes in self.grid.items():
            if check not in self.checks:
                raise ValueError(f"grid names check '{check}', which is not in checks {sorted(self.checks)}")
            for key, values in axes.items():
                if not values:
                    raise ValueError(f"grid {check}.{key} is empty; give at least one value")
                if key in self.checks[check]:
                    raise ValueError(f"{check}.{key} is set in checks and in grid; give it in one place")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> Campaign:
        raw = read_yaml_mapping(path, what="campaign file", holds="name, models, datasets and checks")
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "campaign") -> Campaign:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {x}" for x in validation_lines(exc))) from exc


@dataclass(frozen=True)
class Job:
    """One model (behind one defence) × one dataset × one check with one parameter set."""

    index: int
    model: CampaignModel
    defence: str | None
    data: DataRef
    check: str
    params: dict[str, Any]
    seed: int
    time_limit: float | None

    def plan(self) -> Plan:
        """The job as an ordinary plan (what ``aisec assess --plan`` would run)."""
        ref = self.model.model_dump(exclude={"name"})
        ref["defence"] = self.defence
        return Plan(model=ModelRef(**ref), data=self.data, checks={self.check: self.params}, seed=self.seed)

    @property
    def label(self) -> str:
        """``model[+defence] / dataset / check [params of the grid]`` for progress lines."""
        return f"{self.model.label}{'+' + self.defence if self.defence else ''} / {self.data.source} / {self.check}"


def expand(campaign: Campaign) -> list[Job]:
    """Every job of the campaign, in file order (models, then defences, datasets, checks, grid points).

    The budget caps each job: ``samples`` lowers the check's ``samples`` (for checks that take one), ``queries``
    the model's query budget; the time limit is the smaller of the campaign's limits for the job's samples.
    Check names and parameters are validated here, before anything runs.
    """
    from aisec.core.registry import get_check

    jobs: list[Job] = []
    for check, base in campaign.checks.items():
        info = get_check(check)  # an unknown check fails now, listing the known ones
        fields = info.cls.Params.model_fields
        for key in [*base, *campaign.grid.get(check, {})]:
            if key not in fields:
                raise ConfigError(f"check '{check}' has no parameter '{key}' (it takes {', '.join(sorted(fields))})")
    for model, defence, data in itertools.product(campaign.models, campaign.defences, campaign.datasets):
        if campaign.budget.queries is not None:
            cap = min(campaign.budget.queries, model.query_budget or campaign.budget.queries)
            model = model.model_copy(update={"query_budget": cap})
        for check, base in campaign.checks.items():
            axes = campaign.grid.get(check, {})
            for point in itertools.product(*axes.values()):
                params = {**base, **dict(zip(axes, point, strict=True))}
                if campaign.contest and check == "robustness":  # measured at 8/255, on 8-bit pixel values
                    params["quantize"] = True
                    params["reference_eps"] = {**params.get("reference_eps", {}), "linf": CONTEST_EPS}
                samples = _samples(check, params, campaign.budget.samples)
                if samples is not None:
                    params["samples"] = samples
                try:
                    info = get_check(check)
                    info.cls.Params(**params)
                except ConfigError:
                    raise
                except Exception as exc:
                    raise ConfigError(f"invalid parameters for check '{check}' ({short_repr(params)}): {exc}") from exc
                jobs.append(Job(index=len(jobs), model=model, defence=defence, data=data, check=check, params=params,
                                seed=campaign.seed, time_limit=campaign.limits.for_samples(samples)))
    return jobs


def _samples(check: str, params: dict[str, Any], cap: int | None) -> int | None:
    """The samples a job of ``check`` runs on with the budget's cap applied (None: the check takes no count)."""
    from aisec.core.registry import get_check

    field = get_check(check).cls.Params.model_fields.get("samples")
    if field is None:
        return None
    given = params.get("samples", field.default)
    if given is None or not isinstance(given, int):
        return cap
    return min(given, cap) if cap is not None else given
