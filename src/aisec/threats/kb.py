"""The threat knowledge base shipped as package data (``aisec/threats/data``).

Seven files: ``atlas-release.yaml`` (the MITRE ATLAS release the ids and names are checked against,
trimmed by ``scripts/atlas_extract.py``), ``threats.yaml`` (each threat with its attributes, the
aisec checks that measure it and the countermeasures that link to aisec defences), ``standards.yaml``
(clauses of ISO/IEC 24029/24028, EU AI Act Art. 15 and BSI AIC4 and the measures that evidence them,
each row with its source), ``enisa.yaml`` (ENISA's ML threats paired with those threats),
``etsi.yaml`` (ETSI GR SAI 005's mitigation groups and the aisec countermeasures in them),
``taxonomy-quotes.yaml`` (the short ENISA and ETSI phrases those two rest on, so their names cannot
drift from the source) and ``sources.yaml`` (attribution and licences, and what is not shipped).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

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
    copy_read: str | None = None
    release: str | None = None
    tag: str | None = None
    commit: str | None = None
    license: str | None = None
    attribution: str | None = None
    cited_by: str | None = None
    note: str | None = None


class SourceGap(_Frozen):
    """Something a source has that the knowledge base does not ship, and why."""

    source: str
    what: str
    why: str


class Sources(_Frozen):
    version: int
    sources: tuple[Source, ...]
    gaps: tuple[SourceGap, ...] = ()

    def source(self, sid: str) -> Source | None:
        return next((s for s in self.sources if s.id == sid), None)


class Quote(_Frozen):
    """A phrase quoted verbatim (whitespace joined) from ``url``, at most 15 words."""

    url: str
    where: str
    text: str = Field(min_length=1)


class Quotes(_Frozen):
    version: int
    quotes: tuple[Quote, ...]

    def has(self, text: str, url: str) -> bool:
        return any(q.text == text and q.url == url for q in self.quotes)


class EnisaRow(_Frozen):
    """An ENISA ML threat (and sub-threat) paired with a threat of ``threats.yaml``.

    ``quote`` is the ENISA phrase that names ``enisa`` (on page ``url``); ``basis`` the ENISA phrase the
    pairing rests on (on ``basis_url``, else ``url``).
    """

    threat: str
    enisa: str
    quote: str
    url: str
    sub_threat: str | None = None
    sub_quote: str | None = None
    basis: str | None = None
    basis_url: str | None = None
    note: str | None = None


class Enisa(_Frozen):
    version: int
    source: str
    rows: tuple[EnisaRow, ...]

    def for_threat(self, tid: str) -> list[EnisaRow]:
        return [r for r in self.rows if r.threat == tid]


class EtsiGroup(_Frozen):
    """A mitigation group ETSI GR SAI 005 names: an attack class or an approach."""

    name: str
    kind: Literal["attack class", "approach"]
    quote: str
    url: str


class EtsiLink(_Frozen):
    """An aisec countermeasure (registry ``family:name`` or ATLAS mitigation id) placed in ETSI groups."""

    countermeasure: str
    against: tuple[str, ...] = Field(min_length=1)
    approach: str | None = None
    why: str


class Etsi(_Frozen):
    version: int
    source: str
    groups: tuple[EtsiGroup, ...]
    links: tuple[EtsiLink, ...]

    def link(self, countermeasure: str) -> EtsiLink | None:
        return next((x for x in self.links if x.countermeasure == countermeasure), None)


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


@cache
def load_quotes() -> Quotes:
    """The ENISA and ETSI phrases the taxonomy rows rest on."""
    result: Quotes = _parse(Quotes, "taxonomy-quotes.yaml")
    return result


@cache
def load_enisa() -> Enisa:
    """ENISA's ML threats paired with the shipped threats."""
    result: Enisa = _parse(Enisa, "enisa.yaml")
    return result


@cache
def load_etsi() -> Etsi:
    """ETSI GR SAI 005's mitigation groups and the aisec countermeasures placed in them."""
    result: Etsi = _parse(Etsi, "etsi.yaml")
    return result


MAX_QUOTE_WORDS = 15


def _words(text: str) -> list[str]:
    return text.split()


def _joined(text: str) -> str:
    return " ".join(text.split())


def taxonomy_problems(enisa: Enisa, etsi: Etsi, quotes: Quotes, kb: KnowledgeBase) -> list[str]:
    """Every way the ENISA and ETSI rows stray from the phrases they quote (empty: none).

    Each quote must be in ``quotes`` with the same page URL and be at most 15 words; each ENISA threat,
    sub-threat and ETSI group name must appear verbatim in the phrase quoted for it; rows must name
    threats of ``kb`` and ETSI links groups ETSI names (an attack class for ``against``, an approach for
    ``approach``).
    """
    problems: list[str] = []
    for q in quotes.quotes:
        if len(_words(q.text)) > MAX_QUOTE_WORDS:
            problems.append(f"quote longer than {MAX_QUOTE_WORDS} words: {q.text!r}")

    def quoted(what: str, text: str, url: str) -> None:
        if not quotes.has(text, url):
            problems.append(f"{what}: {text!r} is not a phrase of taxonomy-quotes.yaml from {url}")

    def names(what: str, name: str, text: str) -> None:
        if _joined(name) not in _joined(text):
            problems.append(f"{what}: the name {name!r} is not in the phrase quoted for it, {text!r}")

    for r in enisa.rows:
        where = f"enisa.yaml {r.threat}"
        if kb.threat(r.threat) is None:
            problems.append(f"{where}: no such threat in threats.yaml")
        quoted(where, r.quote, r.url)
        names(where, r.enisa, r.quote)
        if (r.sub_threat is None) != (r.sub_quote is None):
            problems.append(f"{where}: a sub-threat needs its phrase and a phrase its sub-threat")
        if r.sub_threat is not None and r.sub_quote is not None:
            quoted(where, r.sub_quote, r.url)
            names(where, r.sub_threat, r.sub_quote)
        if r.basis is not None:
            quoted(where, r.basis, r.basis_url or r.url)
    kinds = {g.name: g.kind for g in etsi.groups}
    for g in etsi.groups:
        quoted(f"etsi.yaml group {g.name}", g.quote, g.url)
        names(f"etsi.yaml group {g.name}", g.name, g.quote)
    for x in etsi.links:
        where = f"etsi.yaml link {x.countermeasure}"
        for a in x.against:
            if kinds.get(a) != "attack class":
                problems.append(f"{where}: against {a!r} is not an attack class ETSI names")
        if x.approach is not None and kinds.get(x.approach) != "approach":
            problems.append(f"{where}: approach {x.approach!r} is not an approach ETSI names")
    return problems


def mitigation_name(mid: str) -> str:
    """The ATLAS name of a mitigation id (the id itself when the release does not have it)."""
    m = load_release().mitigation(mid)
    return m.name if m else mid


def tactic_names(ids: tuple[str, ...]) -> list[str]:
    rel = load_release()
    return [t.name if (t := rel.tactic(i)) else i for i in ids]
