"""The shipped requirement/threat/metric catalogue (``catalogue.yaml``), parsed and cross-checked."""

from __future__ import annotations

import fnmatch
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aisec.core.errors import ConfigError


class Requirement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    framework: str
    title: str
    summary: str


class Threat(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    parent: str | None = None


class Mitigation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    mitigates: tuple[str, ...] = ()


class MetricEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    check: str
    unit: str
    higher_is_better: bool
    summary: str
    requirements: tuple[str, ...] = ()
    threats: tuple[str, ...] = ()


class PropertyEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    requirements: tuple[str, ...] = ()
    threats: tuple[str, ...] = ()


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    notice: str
    requirements: tuple[Requirement, ...]
    threats: tuple[Threat, ...]
    mitigations: tuple[Mitigation, ...]
    metrics: tuple[MetricEntry, ...]
    properties: tuple[PropertyEntry, ...] = Field(default=())

    @model_validator(mode="after")
    def _refs(self) -> Catalogue:
        reqs = {r.id for r in self.requirements}
        threats = {t.id for t in self.threats}
        entries: list[MetricEntry | PropertyEntry] = [*self.metrics, *self.properties]
        for m in entries:
            for r in m.requirements:
                if r not in reqs:
                    raise ValueError(f"catalogue: {m.id} names unknown requirement {r}")
            for t in m.threats:
                if t not in threats:
                    raise ValueError(f"catalogue: {m.id} names unknown threat {t}")
        for mi in self.mitigations:
            for t in mi.mitigates:
                if t not in threats:
                    raise ValueError(f"catalogue: mitigation {mi.id} names unknown threat {t}")
        return self

    def metric(self, metric_id: str) -> MetricEntry | None:
        for m in self.metrics:
            if m.id == metric_id:
                return m
        return None

    def matching_metrics(self, pattern: str) -> list[MetricEntry]:
        return [m for m in self.metrics if fnmatch.fnmatchcase(m.id, pattern)]

    def property(self, name: str) -> PropertyEntry | None:
        for p in self.properties:
            if p.id == name:
                return p
        return None

    def requirement(self, req_id: str) -> Requirement | None:
        for r in self.requirements:
            if r.id == req_id:
                return r
        return None


@cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped in the package (parsed once)."""
    text = resources.files("aisec.policy").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    try:
        return Catalogue.model_validate(yaml.safe_load(text))
    except ValueError as exc:  # a broken shipped file is a bug, but say where
        raise ConfigError(f"aisec/policy/catalogue.yaml is invalid: {exc}") from exc
