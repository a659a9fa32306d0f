"""The threat knowledge base shipped as package data (``aisec/threats/data``).

Four files: ``atlas-release.yaml`` (the MITRE ATLAS release the ids and names are checked against,
trimmed by ``scripts/atlas_extract.py``), ``threats.yaml`` (each threat with its attributes, the
aisec checks that measure it and the countermeasures that link to aisec defences), ``standards.yaml``
(clauses of ISO/IEC 24029/24028, EU AI Act Art. 15 and BSI AIC4 and the measures that evidence them,
each row with its source) and ``sources.yaml`` (attribution and licences, and what is not shipped).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisec.core.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AtlasTechnique(_Frozen):
    id: str
    name: str
    parent: str | None = None
    tactics: tuple[str, ...] = ()


class AtlasMitigation(_Frozen):
    id: str
    name: str
    techniques: tuple[str, ...] = ()


class AtlasTactic(_Frozen):
    id: str
    name: str


class AtlasRelease(_Frozen):
    """A MITRE ATLAS release, trimmed to ids, names and links."""

    release: str
    tag: str
    commit: str
    source: str
    license: str
    tactics: tuple[AtlasTactic, ...]
    techniques: tuple[AtlasTechnique, ...]
    mitigations: tuple[AtlasMitigation, ...]

    def technique(self, tid: str) -> AtlasTechnique | None:
        return next((t for t in self.techniques if t.id == tid), None)

    def mitigation(self, mid: str) -> AtlasMitigation | None:
        return next((m for m in self.mitigations if m.id == mid), None)

    def tactic(self, tid: str) -> AtlasTactic | None:
        return next((t for t in self.tactics if t.id == tid), None)

    def tactics_of(self, tid: str) -> tuple[str, ...]:
        """A technique's tactics, a sub-technique's being its parent's when it lists none."""
        t = self.technique(tid)
        if t is None:
            return ()
        if not t.tactics and t.parent:
            return self.tactics_of(t.parent)
        return t.tactics


class Countermeasure(_Frozen):
    """An ATLAS mitigation of a threat and the aisec defences that implement it (``family:name``)."""

    id: str
    defences: tuple[str, ...] = ()


class ThreatEntry(_Frozen):
    id: str
    name: str
    tactics: tuple[str, ...]
    family: str
    knowledge: tuple[str, ...]
    access: tuple[str, ...]
    modality: tuple[str, ...]
    goals: tuple[str, ...]
    checks: tuple[str, ...]
    metrics: tuple[str, ...]
    attacks: tuple[str, ...] = ()
    mitigations: tuple[Countermeasure, ...] = ()
    untested: str | None = None


class KnowledgeBase(_Frozen):
    version: int
    threats: tuple[ThreatEntry, ...]

    def threat(self, tid: str) -> ThreatEntry | None:
        return next((t for t in self.threats if t.id == tid), None)

    def for_goal(self, goal: str) -> list[ThreatEntry]:
        return [t for t in self.threats if goal in t.goals]


class StandardRow(_Frozen):
    standard: str
    clause: str
    summary: str
    metrics: tuple[str, ...]
    threats: tuple[str, ...] = ()
    note: str | None = None
    source: str = Field(min_length=1)


class StandardGap(_Frozen):
    standard: str
    why: str


class Standards(_Frozen):
    version: int
    rows: tuple[StandardRow, ...]
    gaps: tuple[StandardGap, ...] = ()

    def for_metric(self, metric: str) -> list[StandardRow]:
        return [r for r in self.rows if metric in r.metrics]


class Source(_Frozen):
    id: str
    title: str
    url: str
    shipped: tuple[str, ...]
    release: str | None = None
    tag: str | None = None
    commit: str | None = None
    license: str | None = None
    attribution: str | None = None
    cited_by: str | None = None
    note: str | None = None


class Sources(_Frozen):
    version: int
    sources: tuple[Source, ...]


def _read(name: str) -> Any:
    text = resources.files("aisec.threats").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _parse(cls: type[Any], name: str) -> Any:
    try:
        return cls.model_validate(_read(name))
    except ValidationError as exc:  # a broken shipped file is a bug, but say where
        raise ConfigError(f"aisec/threats/data/{name} is invalid: {exc}") from exc


@cache
def load_release() -> AtlasRelease:
    """The ATLAS release the knowledge base cites (parsed once)."""
    result: AtlasRelease = _parse(AtlasRelease, "atlas-release.yaml")
    return result


@cache
def load_kb() -> KnowledgeBase:
    """The shipped threats (parsed once)."""
    result: KnowledgeBase = _parse(KnowledgeBase, "threats.yaml")
    return result


@cache
def load_standards() -> Standards:
    result: Standards = _parse(Standards, "standards.yaml")
    return result


@cache
def load_sources() -> Sources:
    result: Sources = _parse(Sources, "sources.yaml")
    return result


def mitigation_name(mid: str) -> str:
    """The ATLAS name of a mitigation id (the id itself when the release does not have it)."""
    m = load_release().mitigation(mid)
    return m.name if m else mid


def tactic_names(ids: tuple[str, ...]) -> list[str]:
    rel = load_release()
    return [t.name if (t := rel.tactic(i)) else i for i in ids]
