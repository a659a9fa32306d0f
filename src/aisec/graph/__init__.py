"""Certification graph: evidence linked to models, runs, requirements (AIC4, AI Act Art. 15) and ATLAS threats.

>>> g = build_graph(store.query(), runs=store.runs())
>>> open("graph.graphml", "w").write(g.to_graphml())
"""

from __future__ import annotations

from aisec.graph.model import CertificationGraph, Edge, Node, build_graph

__all__ = ["CertificationGraph", "Edge", "Node", "build_graph"]
