"""The certification graph: what was measured, on what, and which requirement or threat it speaks to.

Nodes (``kind``): ``toe`` (target of evaluation), ``model``, ``dataset``, ``run``, ``metric`` (one
measurement, i.e. one evidence record), ``requirement`` (AIC4 criterion, AI Act Art. 15 clause),
``threat`` (MITRE ATLAS technique), ``mitigation`` (ATLAS mitigation) and ``threat_model`` (the
threat model a run answered, from its plan: ``aisec assess --threat-model``). Edges::

    model -part_of-> toe          run -assessed-> model         run -used-> dataset
    metric -produced_by-> run     metric -measures-> model
    metric -evidences-> requirement                   metric -tests-> threat
    mitigation -mitigates-> threat                    threat -subtechnique_of-> threat
    run -answers-> threat_model                       threat_model -considers-> threat

Requirement nodes carry the policy ``verdict`` when a :class:`~aisec.policy.rules.PolicyReport` is given.
Exports: GraphML (hand-written, readable by networkx, yEd, Gephi) and JSON-LD.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from aisec.core.evidence import Evidence
from aisec.policy.catalogue import Catalogue, load_catalogue

if TYPE_CHECKING:
    from aisec.policy.rules import PolicyReport
    from aisec.store import RunInfo

NodeKind = Literal["toe", "model", "dataset", "run", "metric", "requirement", "threat", "mitigation", "threat_model"]
ATLAS_URL = "https://atlas.mitre.org"
VOCAB = "urn:aisec:vocab:"


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: NodeKind
    label: str
    attrs: dict[str, Any] = Field(default_factory=dict)


class Edge(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    target: str
    kind: str


class CertificationGraph(BaseModel):
    nodes: dict[str, Node] = Field(default_factory=dict)
    edges: list[Edge] = Field(default_factory=list)
    _seen: set[Edge] = PrivateAttr(default_factory=set)

    def model_post_init(self, context: Any, /) -> None:
        self._seen = set(self.edges)

    def add(self, node: Node) -> str:
        if node.id not in self.nodes:
            self.nodes[node.id] = node
        return node.id

    def link(self, source: str, target: str, kind: str) -> None:
        e = Edge(source=source, target=target, kind=kind)
        if e not in self._seen:
            self._seen.add(e)
            self.edges.append(e)

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def neighbours(self, node_id: str, *, kind: str | None = None, edge: str | None = None) -> list[Node]:
        """Nodes joined to ``node_id`` by an edge in either direction (optionally of a node/edge kind)."""
        out: dict[str, Node] = {}
        for e in self.edges:
            if edge and e.kind != edge:
                continue
            other = e.target if e.source == node_id else e.source if e.target == node_id else None
            if other is not None and (kind is None or self.nodes[other].kind == kind):
                out[other] = self.nodes[other]
        return list(out.values())

    def resolve(self, ref: str) -> Node:
        """A node by id, or by the part after its kind prefix (``AIC4/SR-05``, ``AML.T0043``, a run id)."""
        if ref in self.nodes:
            return self.nodes[ref]
        hits = [n for n in self.nodes.values() if n.id.split(":", 1)[-1] == ref]
        if len(hits) == 1:
            return hits[0]
        from aisec.core.errors import ConfigError

        if not hits:
            raise ConfigError(f"no node '{ref}' in the graph; try e.g. AIC4/SR-05, AML.T0043 or a model sha256")
        raise ConfigError(f"'{ref}' names {len(hits)} nodes: {', '.join(n.id for n in hits)}")

    def prune(self) -> CertificationGraph:
        """Drop catalogue nodes that no measurement reaches (keeps the export about this evidence)."""
        keep = {n.id for n in self.nodes.values() if n.kind not in ("requirement", "threat", "mitigation")}
        metric_ids = {n.id for n in self.of_kind("metric")}
        threats = set()
        for e in self.edges:
            if (e.source in metric_ids and e.kind in ("evidences", "tests")) or e.kind == "considers":
                keep.add(e.target)
                if e.kind in ("tests", "considers"):
                    threats.add(e.target)
        changed = True
        while changed:  # parents of kept threats, and mitigations of kept threats
            changed = False
            for e in self.edges:
                if e.kind == "subtechnique_of" and e.source in keep and e.target not in keep:
                    keep.add(e.target)
                    changed = True
                if e.kind == "mitigates" and e.target in keep and e.source not in keep:
                    keep.add(e.source)
                    changed = True
        return CertificationGraph(nodes={k: v for k, v in self.nodes.items() if k in keep},
                                  edges=[e for e in self.edges if e.source in keep and e.target in keep])

    # -- exports --------------------------------------------------------------------------------

    def to_graphml(self) -> str:
        """GraphML with node attributes ``kind``, ``label``, ``attrs`` (JSON) and edge attribute ``kind``."""
        ns = "http://graphml.graphdrawing.org/xmlns"
        ET.register_namespace("", ns)
        root = ET.Element(f"{{{ns}}}graphml")
        for key, target in (("kind", "node"), ("label", "node"), ("attrs", "node"), ("ekind", "edge")):
            ET.SubElement(root, f"{{{ns}}}key", id=key, attrib={"for": target, "attr.name": key.lstrip("e"),
                                                                 "attr.type": "string"})
        g = ET.SubElement(root, f"{{{ns}}}graph", id="aisec", edgedefault="directed")
        for n in self.nodes.values():
            el = ET.SubElement(g, f"{{{ns}}}node", id=n.id)
            for key, value in (("kind", n.kind), ("label", n.label), ("attrs", _json(n.attrs))):
                ET.SubElement(el, f"{{{ns}}}data", key=key).text = value
        for i, e in enumerate(self.edges):
            el = ET.SubElement(g, f"{{{ns}}}edge", id=f"e{i}", source=e.source, target=e.target)
            ET.SubElement(el, f"{{{ns}}}data", key="ekind").text = e.kind
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def to_jsonld(self) -> dict[str, Any]:
        """JSON-LD: one object per node, edges as properties of their source node."""
        kinds = sorted({e.kind for e in self.edges})
        context: dict[str, Any] = {"@vocab": VOCAB, "label": "http://www.w3.org/2000/01/rdf-schema#label",
                                   "sameAs": {"@id": "http://www.w3.org/2002/07/owl#sameAs", "@type": "@id"}}
        context.update({k: {"@type": "@id"} for k in kinds})
        objs: dict[str, dict[str, Any]] = {}
        for n in self.nodes.values():
            obj: dict[str, Any] = {"@id": _iri(n.id), "@type": n.kind, "label": n.label}
            obj.update({k: v for k, v in _plain(n.attrs).items() if k not in obj})
            if n.kind in ("threat", "mitigation"):
                section = "techniques" if n.kind == "threat" else "mitigations"
                obj["sameAs"] = f"{ATLAS_URL}/{section}/{n.attrs['atlas_id']}"
            objs[n.id] = obj
        for e in self.edges:
            objs[e.source].setdefault(e.kind, []).append(_iri(e.target))
        return {"@context": context, "@graph": list(objs.values())}


def build_graph(
    records: Iterable[Evidence],
    *,
    runs: Sequence[RunInfo] = (),
    policy: PolicyReport | None = None,
    catalogue: Catalogue | None = None,
    prune: bool = True,
) -> CertificationGraph:
    """The graph of ``records`` against the shipped catalogue (pruned to what they reach unless ``prune=False``)."""
    cat = catalogue or load_catalogue()
    g = CertificationGraph()
    verdicts = {q.id: q.status for q in policy.requirements} if policy else {}
    for r in cat.requirements:
        attrs: dict[str, Any] = {"framework": r.framework, "title": r.title, "summary": r.summary}
        if r.id in verdicts:
            attrs["verdict"] = verdicts[r.id]
        g.add(Node(id=f"requirement:{r.id}", kind="requirement", label=f"{r.id} {r.title}", attrs=attrs))
    for t in cat.threats:
        g.add(Node(id=f"threat:{t.id}", kind="threat", label=f"{t.id} {t.name}", attrs={"atlas_id": t.id}))
    for t in cat.threats:
        if t.parent:
            g.link(f"threat:{t.id}", f"threat:{t.parent}", "subtechnique_of")
    for m in cat.mitigations:
        g.add(Node(id=f"mitigation:{m.id}", kind="mitigation", label=f"{m.id} {m.name}", attrs={"atlas_id": m.id}))
        for tid in m.mitigates:
            g.link(f"mitigation:{m.id}", f"threat:{tid}", "mitigates")
    run_info = {r.id: r for r in runs}
    for ev in records:
        res = ev.resource
        toe = g.add(Node(id=f"toe:{ev.target_of_evaluation_id}", kind="toe", label=ev.target_of_evaluation_id))
        model = g.add(Node(id=f"model:{res.model_sha256}", kind="model", label=res.model_name,
                           attrs={"sha256": res.model_sha256, "access": res.model_access}))
        data = g.add(Node(id=f"dataset:{res.dataset_digest}", kind="dataset", label=res.dataset_name,
                          attrs={"digest": res.dataset_digest, "source": res.dataset_source}))
        info = run_info.get(ev.run_id)
        run_attrs: dict[str, Any] = {"tool_version": ev.tool_version, "seed": ev.seed}
        if info is not None:
            run_attrs.update(status=info.status, created_at=info.created_at.isoformat())
        run = g.add(Node(id=f"run:{ev.run_id}", kind="run", label=ev.run_id, attrs=run_attrs))
        g.link(model, toe, "part_of")
        g.link(run, model, "assessed")
        g.link(run, data, "used")
        metric = g.add(Node(id=f"metric:{ev.id}", kind="metric", label=f"{ev.metric} = {_num(ev.value)}", attrs={
            "metric": ev.metric, "value": ev.value, "unit": ev.unit, "higher_is_better": ev.higher_is_better,
            "interval": ev.interval.model_dump() if ev.interval else None, "sample_count": ev.sample_count,
            "parameters": ev.parameters, "timestamp": ev.timestamp.isoformat(), "evidence_sha256": ev.sha256(),
        }))
        g.link(metric, run, "produced_by")
        g.link(metric, model, "measures")
        entry = cat.metric(ev.metric)
        for q in entry.requirements if entry else ():
            g.link(metric, f"requirement:{q}", "evidences")
        for tid in dict.fromkeys((*ev.threats, *(entry.threats if entry else ()))):
            if f"threat:{tid}" not in g.nodes:
                g.add(Node(id=f"threat:{tid}", kind="threat", label=tid, attrs={"atlas_id": tid}))
            g.link(metric, f"threat:{tid}", "tests")
    for row in runs:  # after the records, so a run's node carries their attributes
        _threat_model_nodes(g, row)
    return g.prune() if prune else g


def _threat_model_nodes(g: CertificationGraph, info: RunInfo) -> None:
    """The threat model a run's plan answered: a node, linked from the run and to each threat it considers
    (with why a threat was not tested, where the plan says so)."""
    tm = (info.plan or {}).get("threat_model")
    if not tm:
        return
    attacker, system = tm.get("attacker", {}), tm.get("system", {})
    node = g.add(Node(id=f"threat_model:{tm.get('name', info.id)}", kind="threat_model", label=str(tm.get("name")),
                      attrs={"goals": attacker.get("goals", []), "knowledge": attacker.get("knowledge"),
                             "access": system.get("access"), "deployment": system.get("deployment")}))
    run = g.add(Node(id=f"run:{info.id}", kind="run", label=info.id, attrs={"status": info.status}))
    g.link(run, node, "answers")
    considered: dict[str, str | None] = {}
    for r in (info.plan or {}).get("rationale", []):
        for tid in r.get("threats", []):
            considered.setdefault(tid, None)
            if r.get("choice") == "not tested":
                considered[tid] = r.get("because")
    for o in tm.get("out_of_scope", []):
        considered[o["threat"]] = f"out of scope: {o['why']}"
    for tid, why in considered.items():
        if f"threat:{tid}" not in g.nodes:
            g.add(Node(id=f"threat:{tid}", kind="threat", label=tid, attrs={"atlas_id": tid}))
        g.link(node, f"threat:{tid}", "considers")
        if why:
            g.nodes[node] = g.nodes[node].model_copy(
                update={"attrs": {**g.nodes[node].attrs, "not_tested": {
                    **g.nodes[node].attrs.get("not_tested", {}), tid: why}}})


def _json(v: Any) -> str:
    return json.dumps(_plain(v), sort_keys=True)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _num(v: float) -> str:
    return f"{v:.4g}"


def _iri(node_id: str) -> str:
    return "urn:aisec:" + quote(node_id, safe=":.-_")
